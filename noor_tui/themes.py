"""The dashboard's two themes: a dark one for all-day use and a light one for bright rooms."""

from __future__ import annotations

from textual.theme import Theme

NOOR_DARK = Theme(
    name="noor-dark",
    primary="#2FB6A8",
    secondary="#7AA2F7",
    accent="#E0AF68",
    warning="#E0AF68",
    error="#F7768E",
    success="#9ECE6A",
    foreground="#D5DAE5",
    background="#10141B",
    surface="#161B24",
    panel="#1E2430",
    dark=True,
    variables={
        "footer-key-foreground": "#2FB6A8",
        "block-cursor-text-style": "none",
        "border": "#2A3241",
        "border-blurred": "#2A3241",
    },
)

NOOR_LIGHT = Theme(
    name="noor-light",
    primary="#0F766E",
    secondary="#2F5BD3",
    accent="#B45309",
    warning="#B45309",
    error="#C0283E",
    success="#2F7D32",
    foreground="#1E2430",
    background="#F6F7F9",
    surface="#FFFFFF",
    panel="#E9ECF1",
    dark=False,
    variables={
        "footer-key-foreground": "#0F766E",
        "block-cursor-text-style": "none",
        "border": "#C9CFD8",
        "border-blurred": "#C9CFD8",
    },
)

THEMES = (NOOR_DARK, NOOR_LIGHT)
PAIRS = {"noor-dark": "noor-light", "noor-light": "noor-dark"}
"""Which theme `ctrl+t` switches to; any other theme switches to noor-dark or noor-light by its darkness."""
