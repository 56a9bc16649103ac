"""The domain: accounts, API keys, errors, money. Plain types and pure functions, no I/O.

Every other layer imports from here; this package imports nothing of the daemon but `config` and `clock`.
"""
