"""Limits on the request path, all in memory: rates (GCRA), concurrency, period quotas, abuse detection."""
