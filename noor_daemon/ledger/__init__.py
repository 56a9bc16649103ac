"""The SQLite ledger: schema and migrations, the group-commit writer, rollups, accounts and keys."""
