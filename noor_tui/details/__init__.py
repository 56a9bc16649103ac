"""What Enter opens on each table: one module per kind of record, each building a `DetailScreen`."""
