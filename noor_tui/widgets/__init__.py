"""Reusable widgets: charts, stat tiles, the live feed, quota table, dialogs, chrome."""
