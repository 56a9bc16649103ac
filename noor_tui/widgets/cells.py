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


WIDE = 110
"""Terminals at least this wide get every column and the roomier widths."""


class Column:
    """A table column; `width` is one width or (narrow, wide); `wide_only` hides it on narrow terminals."""

    def __init__(self, key: str, label: str, width: int | tuple[int, int], *, wide_only: bool = False) -> None:
        self.key = key
        self.label = label
        self.widths = width if isinstance(width, tuple) else (width, width)
        self.wide_only = wide_only


def lay_out(table, columns: list[Column], terminal_width: int) -> list[str]:
    """Give `table` the columns that suit the terminal; rebuilds them (and drops the rows) only when that changes."""
    wide = terminal_width >= WIDE
    wanted = [(c.key, c.label, c.widths[1] if wide else c.widths[0]) for c in columns if wide or not c.wide_only]
    current = [(str(key.value), str(col.label), col.width) for key, col in table.columns.items()]
    if current != wanted:
        table.clear(columns=True)
        for key, label, width in wanted:
            table.add_column(label, key=key, width=width)
    return [key for key, _, _ in wanted]


def width_of(table, key: str) -> int:
    for column_key, column in table.columns.items():
        if column_key.value == key:
            return column.width
    return 0


def sync_rows(table, columns: list[str], rows: list[tuple[str, dict]]) -> None:
    """Make `table` show `rows` ((key, cells by column) in order) by removing, updating and adding rows,
    so the cursor stays on its row across polls. The first column's cell carries the order."""
    from rich.text import Text

    wanted = [key for key, _ in rows]
    current = {str(key.value) for key in table.rows}
    for key in current - set(wanted):
        table.remove_row(key)
    for rank, (key, cells) in enumerate(rows):
        first = cells[columns[0]]
        if isinstance(first, Ranked):
            first.rank = rank
        elif isinstance(first, Text):
            ranked = Ranked(first.plain, rank, style=first.style)
            ranked.justify = first.justify
            cells = {**cells, columns[0]: ranked}
        else:
            cells = {**cells, columns[0]: Ranked(str(first), rank)}
        if key in current:
            for column in columns:
                table.update_cell(key, column, cells[column])
        else:
            table.add_row(*(cells[column] for column in columns), key=key)
    shown = [str(row.key.value) for row in table.ordered_rows]
    if shown != wanted:
        table.sort(columns[0], key=by_rank)
