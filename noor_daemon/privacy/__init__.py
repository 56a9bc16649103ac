"""Data rights: export, deletion, privacy requests, retention and policy versions."""
