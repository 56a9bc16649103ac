"""Every list of the dashboard, as k9s shows one: `/` filters live, a header click or `<` `>` sorts, `r` reverses,
Enter opens the record, `y` copies its id.

A screen hands the table its records (`RecordTable.show`) in its own preferred order on each poll; the
table keeps the filter and the sort the user chose, and diffs the rows by record key, so the cursor
stays on the record the user was on whatever the new order (an operator who suspends a key and then
revokes "it" must revoke that key, not whichever one moved under the cursor). Columns are laid out to
the table's own width: each has the width it needs, the spare width goes to the columns that `grow`,
and on a narrow table the columns with the highest `drop` are left out first.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input
from textual.widgets.data_table import RowDoesNotExist

from noor_tui.widgets.cells import Ranked, by_rank

EMPTY_KEY = "\x00empty"
SCROLLBAR = 1
_STATUS_CLASS = re.compile(r"^([1-5])xx$")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    """The least width the column needs."""
    grow: int = 0
    """Its share of the width left over (0: it keeps `width`)."""
    drop: int = 0
    """0: always shown; on a narrow table the highest numbers are left out first."""
    right: bool = False
    """Numbers: right-aligned."""


@dataclass
class Record:
    key: str
    """Unique in the table: the row follows it (an id)."""
    cells: dict[str, RenderableType]
    item: Any = None
    """What the row stands for (a KeyInfo, a CallEvent…), handed back by `selected` and `Opened`."""
    sort: dict[str, Any] = field(default_factory=dict)
    """Sort values by column (a number, a time); a column without one sorts by its text."""
    fields: dict[str, str] = field(default_factory=dict)
    """Extra `name:value` filter fields beyond the columns (an id, a status code…)."""
    copy: str | None = None
    """What `y` copies (default: the key)."""


def plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _sort_value(value: Any) -> tuple:
    """Nones last, numbers by value, text without case."""
    if value is None:
        return (2, 0)
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value).lower())


def _matches_value(text: str, wanted: str) -> bool:
    text = text.lower()
    status_class = _STATUS_CLASS.match(wanted)
    if status_class:
        return bool(re.search(rf"\b{status_class.group(1)}\d\d\b", text))
    if "*" in wanted or "?" in wanted:
        return fnmatch.fnmatchcase(text, wanted if wanted.startswith("*") else f"*{wanted}*")
    return wanted in text


class RecordFilter:
    """`ada 4xx model:gpt !status:200`: every word must match; `name:value` looks in one column or field
    (by its key or label), `!` negates, `4xx` is a class of HTTP statuses, `*` a wildcard."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.terms: list[tuple[bool, str | None, str]] = []
        for word in self.text.lower().split():
            negate = word.startswith("!")
            word = word.lstrip("!")
            name, colon, value = word.partition(":")
            if colon and name and value:
                self.terms.append((negate, name, value))
            elif word:
                self.terms.append((negate, None, word))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def accepts(self, record: Record, columns: list[Column]) -> bool:
        named: dict[str, str] = {}
        for column in columns:
            value = plain(record.cells.get(column.key, ""))
            named[column.key.lower()] = value
            if column.label:
                named[column.label.lower()] = value
        named.update({name.lower(): value for name, value in record.fields.items()})
        everything = " ".join([record.key, *named.values()])
        for negate, name, value in self.terms:
            if name is None:
                found = _matches_value(everything, value)
            else:
                found = name in named and _matches_value(named[name], value)
            if found == negate:
                return False
        return True


def fit_widths(columns: list[Column], width: int) -> list[tuple[Column, int]]:
    """The columns that fit in `width` cells (each takes 2 cells of padding), with their widths."""
    shown = list(columns)
    while shown and sum(c.width + 2 for c in shown) > width and any(c.drop for c in shown):
        worst = max(shown, key=lambda c: (c.drop, columns.index(c)))
        shown.remove(worst)
    spare = max(0, width - sum(c.width + 2 for c in shown))
    shares = sum(c.grow for c in shown)
    widths = []
    given = 0
    growing = [c for c in shown if c.grow]
    for column in shown:
        extra = 0
        if column.grow and shares:
            extra = spare * column.grow // shares
            if column is growing[-1]:
                extra = spare - given  # the last growing column takes what rounding left
            given += extra
        widths.append((column, column.width + extra))
    return widths


def fit_cell(cell: RenderableType, width: int, right: bool) -> RenderableType:
    """A cell cut to its column's width with an ellipsis (a DataTable would crop it silently)."""
    if isinstance(cell, Text):
        text = cell.copy()
        if right and not text.justify:
            text.justify = "right"
        if text.cell_len > width:
            text.truncate(width, overflow="ellipsis")
        return text
    if isinstance(cell, str):
        text = cell if len(cell) <= width else cell[: max(0, width - 1)] + "…"
        return Text(text, justify="right") if right else text
    return cell


class RecordTable(Vertical):
    """A filterable, sortable table of records; see the module's docstring."""

    DEFAULT_CSS = """
    RecordTable { height: 1fr; }
    RecordTable > Input.records-filter { display: none; height: 1; border: none; padding: 0 1; margin: 0; }
    RecordTable > Input.records-filter.-shown { display: block; }
    RecordTable > DataTable { height: 1fr; overflow-x: hidden; scrollbar-size-vertical: 1; }
    """

    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("greater_than_sign", "sort(1)", "Sort ▶", show=False),
        Binding("less_than_sign", "sort(-1)", "◀ Sort", show=False),
        Binding("r", "reverse", "Reverse sort", show=False),
        Binding("y", "copy", "Copy id", show=False),
    ]

    @dataclass
    class Opened(Message):
        """Enter (or a click on the highlighted row) on a record: the screen shows its details."""

        table: RecordTable
        record: Record

        @property
        def control(self) -> RecordTable:
            return self.table

    @dataclass
    class Highlighted(Message):
        table: RecordTable
        record: Record | None

        @property
        def control(self) -> RecordTable:
            return self.table

    def __init__(
        self, columns: list[Column], *, id: str, empty: str = "Nothing yet.", zebra: bool = True, filter_hint: str = ""
    ) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.empty = empty
        self.filter_hint = filter_hint
        self.records: list[Record] = []
        self.shown: list[Record] = []
        self.filter = RecordFilter("")
        self.sort_key: str | None = None
        self.sort_reverse = False
        self._zebra = zebra
        self._laid_out: list[tuple[str, str, int]] = []
        self._drawn: dict[str, tuple[Record, Ranked]] = {}
        """Each row as last drawn: its record and its first cell (which carries its rank)."""
        self._widths: dict[str, int] = {}
        self._loaded = False

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=self._zebra)

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    @property
    def filter_input(self) -> Input:
        """The filter box, made on the first `/` (an Input per table would slow every screen's first paint)."""
        found = self.query(Input)
        if found:
            return found.first()
        placeholder = "Filter: words, name:value, !negate, 4xx… (Esc clears)"
        box = Input(placeholder=self.filter_hint or placeholder, classes="records-filter", compact=True)
        box.can_focus = False  # until `/` shows it: a hidden filter must never take the keys meant for the table
        self.mount(box, before=self.table)
        return box

    # -- data ---------------------------------------------------------------------------

    def show(self, records: Iterable[Record]) -> None:
        """The records in the screen's own order; the user's filter and sort are applied on top."""
        self.records = list(records)
        self._loaded = True
        self._refresh_rows()

    @property
    def selected(self) -> Record | None:
        """The record under the cursor (None when the table is empty)."""
        table = self.table
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return next((r for r in self.shown if r.key == row_key.value), None)

    def select(self, key: str) -> bool:
        """Put the cursor on the record `key` (if it is shown)."""
        table = self.table
        try:
            index = table.get_row_index(key)
        except RowDoesNotExist:
            return False
        table.move_cursor(row=index)
        return True

    def _ordered(self) -> list[Record]:
        visible = [r for r in self.records if self.filter.accepts(r, self.columns)] if self.filter else list(self.records)
        if self.sort_key is not None:
            key = self.sort_key
            visible.sort(
                key=lambda r: _sort_value(r.sort[key] if key in r.sort else plain(r.cells.get(key, ""))),
                reverse=self.sort_reverse,
            )
        return visible

    def _available_width(self) -> int:
        width = self.size.width or self.content_size.width
        if not width:
            width = self.app.size.width - 2  # not laid out yet: the usual panel inside its border
        return max(10, width - SCROLLBAR)

    def _lay_out(self) -> bool:
        """Columns for the current width and sort; True if they changed (the rows were dropped)."""
        fitted = fit_widths(self.columns, self._available_width())
        wanted = []
        for column, width in fitted:
            label = column.label
            if column.key == self.sort_key:
                label = f"{label}{'▼' if self.sort_reverse else '▲'}"
            wanted.append((column.key, label, width))
        if wanted == self._laid_out:
            return False
        table = self.table
        table.clear(columns=True)
        self._drawn.clear()
        for key, label, width in wanted:
            column = next(c for c in self.columns if c.key == key)
            table.add_column(Text(label, justify="right") if column.right else label, key=key, width=width)
        self._laid_out = wanted
        self._widths = {key: width for key, _, width in wanted}
        return True

    def _cells(self, record: Record, rank: int) -> list:
        cells = []
        for index, (key, _, width) in enumerate(self._laid_out):
            column = next(c for c in self.columns if c.key == key)
            cell = fit_cell(record.cells.get(key, ""), width, column.right)
            if index == 0:  # the first cell carries the row's place (`DataTable.sort` by rank)
                text = cell if isinstance(cell, Text) else Text(str(cell))
                ranked = Ranked(text.plain, rank)
                ranked.spans = list(text.spans)
                ranked.style = text.style
                ranked.justify = text.justify
                cell = ranked
            cells.append(cell)
        return cells

    def _refresh_rows(self) -> None:
        if not self.is_mounted:
            return
        table = self.table
        previous = self.selected
        cursor_row = table.cursor_row
        ordered = self._ordered()
        with self.app.batch_update():
            self._lay_out()
            wanted = [r.key for r in ordered]
            if not ordered:
                wanted = [EMPTY_KEY]
            current = {str(k.value) for k in table.rows}
            for key in current - set(wanted):
                table.remove_row(key)
                self._drawn.pop(key, None)
            columns = [key for key, _, _ in self._laid_out]
            for rank, record in enumerate(ordered):
                drawn = self._drawn.get(record.key)
                if drawn is not None and drawn[0] is record:  # the same record: only its place may change
                    drawn[1].rank = rank
                    continue
                cells = self._cells(record, rank)
                if record.key in current:
                    for column, cell in zip(columns, cells, strict=True):
                        table.update_cell(record.key, column, cell)
                else:
                    table.add_row(*cells, key=record.key)
                self._drawn[record.key] = (record, cells[0])
            if not ordered:
                self._empty_row(columns, EMPTY_KEY in current)
            if [str(row.key.value) for row in table.ordered_rows] != wanted:
                table.sort(columns[0], key=by_rank)
            self.shown = ordered
            if previous is not None and previous.key in wanted:
                index = wanted.index(previous.key)
                if index != table.cursor_row:  # the record moved: the cursor goes with it
                    table.move_cursor(row=index, scroll=True)
            elif table.row_count and cursor_row >= table.row_count:
                table.move_cursor(row=table.row_count - 1, scroll=False)
        self._subtitle()

    def _empty_row(self, columns: list[str], shown: bool) -> None:
        """One dim line saying why there are no rows (nothing yet, or nothing matches the filter)."""
        if self.filter:
            message = f"No match for “{self.filter.text}” (Esc clears the filter)."
        else:
            message = self.empty if self._loaded else "Loading…"
        widest = max(range(len(columns)), key=lambda i: self._laid_out[i][2])
        cells: list = [Text(message, style="dim") if i == widest else "" for i in range(len(columns))]
        cells[0] = Ranked(cells[0].plain if isinstance(cells[0], Text) else "", 0, style="dim")
        if shown:
            for column, cell in zip(columns, cells, strict=True):
                self.table.update_cell(EMPTY_KEY, column, cell)
        else:
            self.table.add_row(*cells, key=EMPTY_KEY)

    def _subtitle(self) -> None:
        """The panel around the table says what the user narrowed or ordered it by."""
        parent = self.parent
        if parent is None or not parent.has_class("panel"):
            return
        parts = []
        if self.filter:
            parts.append(f"/{self.filter.text}: {len(self.shown)} of {len(self.records)}")
        if self.sort_key is not None:
            label = next((c.label for c in self.columns if c.key == self.sort_key), self.sort_key)
            parts.append(f"by {label.lower()} {'▼' if self.sort_reverse else '▲'}")
        parent.border_subtitle = " · ".join(parts)

    def on_resize(self) -> None:
        if self._loaded and self._lay_out():
            self._refresh_rows()

    # -- the user's filter, sort, selection ------------------------------------------------

    def action_filter(self) -> None:
        box = self.filter_input
        box.add_class("-shown")
        box.can_focus = True
        self.call_after_refresh(box.focus)  # a box just made is focusable once it is mounted

    @on(Input.Changed, ".records-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filter(event.value)

    @on(Input.Submitted, ".records-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.filter:
            self._hide_filter()
        self.table.focus()

    def _hide_filter(self) -> None:
        box = self.filter_input
        box.remove_class("-shown")
        box.can_focus = False

    def set_filter(self, text: str) -> None:
        self.filter = RecordFilter(text)
        if self.filter_input.value != text:
            self.filter_input.value = text
            self.filter_input.add_class("-shown")
            self.filter_input.can_focus = True
        self._refresh_rows()

    def action_clear_filter(self) -> None:
        if not self.query(Input):
            return
        box = self.filter_input
        had_filter = bool(self.filter) or box.has_class("-shown")
        box.value = ""
        self.table.focus()
        self._hide_filter()
        self.filter = RecordFilter("")
        if had_filter:
            self._refresh_rows()

    def sort_by(self, key: str | None, reverse: bool | None = None) -> None:
        """Sort by column `key` (None: the screen's own order); the same column again reverses it."""
        if reverse is None:
            reverse = not self.sort_reverse if key == self.sort_key and key is not None else False
        self.sort_key, self.sort_reverse = key, reverse
        self._refresh_rows()

    def action_sort(self, step: int) -> None:
        keys = [key for key, _, _ in self._laid_out] or [c.key for c in self.columns]
        if self.sort_key not in keys:
            index = 0 if step > 0 else len(keys) - 1
        else:
            index = keys.index(self.sort_key) + step
        self.sort_by(keys[index] if 0 <= index < len(keys) else None, reverse=False)

    def action_reverse(self) -> None:
        if self.sort_key is None:
            self.sort_by(self._laid_out[0][0] if self._laid_out else self.columns[0].key, reverse=True)
        else:
            self.sort_by(self.sort_key, reverse=not self.sort_reverse)

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def action_copy(self) -> None:
        record = self.selected
        if record is None:
            return
        value = record.copy or record.key
        self.app.copy_to_clipboard(value)
        self.notify(value, title="Copied", markup=False)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        record = self.selected
        if record is not None:
            self.post_message(self.Opened(self, record))

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Highlighted(self, self.selected))
