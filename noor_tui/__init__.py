"""NoorAPI terminal dashboard (Textual). It reaches the daemon only through `noor_daemon.client`."""
