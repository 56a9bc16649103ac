"""Table cells that know their place: a DataTable sorts rows by a cell value, so the cell carries the order."""

from __future__ import annotations

from typing import Any

from rich.text import Text


class Ranked(Text):
    """Text that sorts by `rank` (`table.sort(column, key=lambda cell: cell.rank)`)."""

    def __init__(self, text: str, rank: Any, style: str = "") -> None:
        super().__init__(text, style=style)
        self.rank = rank


def by_rank(cell: Any) -> Any:
    return cell.rank
