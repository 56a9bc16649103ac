"""What the dashboards read: the live feed and the last hour in memory, usage series over the rollups.

Fed by the ledger's commit listener and its rollups; read by the admin API and by /v1/me alike,
so both show the same numbers. No HTTP here: the handlers live in `admin/` and `selfservice/`.
"""
