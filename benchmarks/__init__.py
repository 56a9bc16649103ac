"""One-command benchmarks of the gateway, always as ratios against a direct call to the upstream."""
