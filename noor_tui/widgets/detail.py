"""The detail panel (k9s's describe): every field of one record in titled sections; `y` copies its id, Esc closes.

What a record carries shows at once; what needs more questions to the daemon (a key's usage and
history, an account's billing) comes from `load`, a worker, and is added below as it arrives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from noor_daemon.client import AdminApiError, DaemonUnreachable


@dataclass
class Section:
    title: str
    rows: list[tuple[str, RenderableType]] = field(default_factory=list)
    """(label, value) pairs; a value may be rich Text."""
    table: Table | None = None
    """Or a list (an account's keys, a key's history) as a rich table."""
    note: str = ""


Loader = Callable[[], Awaitable[list[Section]]]


def value_text(value: object) -> RenderableType:
    """A field's value as text, never markup (an id or an email with brackets shows as it is)."""
    if value is None or value == "":
        return Text("–", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, (Text, Table)):
        return value
    return Text(str(value))


def grid(rows: list[tuple[str, RenderableType]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value_text(value))
    return table


def listing(*headers: str) -> Table:
    """A small table for a section's list, in the dashboard's quiet style."""
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim bold", expand=False)
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ellipsis")
    return table


class DetailScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "close", "Close"),
        Binding("y", "copy", "Copy id"),
    ]
    DEFAULT_CLASSES = "dialog"

    def __init__(self, title: str, sections: list[Section], *, copy: str, load: Loader | None = None) -> None:
        super().__init__()
        self.detail_title = title
        self.sections = sections
        self.copy_value = copy
        self.loader = load
        self.loaded = load is None

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="detail-box") as box:
            box.border_title = self.detail_title
            box.border_subtitle = "y copies the id · Esc closes"
            for section in self.sections:
                yield from self._section(section)
            if self.loader is not None:
                yield Static(Text("Loading…", style="dim"), classes="detail-loading")

    def _section(self, section: Section) -> ComposeResult:
        yield Static(Text(section.title, style="bold"), classes="detail-title")
        if section.rows:
            yield Static(grid(section.rows), classes="detail-body")
        if section.table is not None:
            yield Static(section.table, classes="detail-body")
        if section.note:
            yield Static(Text(section.note, style="dim"), classes="detail-body")

    def on_mount(self) -> None:
        if self.loader is not None:
            self._load()

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def _load(self) -> None:
        assert self.loader is not None
        box = self.query_one(".detail-box", VerticalScroll)
        try:
            more = await self.loader()
        except (AdminApiError, DaemonUnreachable) as error:
            more = [Section("Not available", note=getattr(error, "message", None) or str(error))]
        for placeholder in self.query(".detail-loading"):
            await placeholder.remove()
        for section in more:
            await box.mount_all(list(self._section(section)))
        self.sections = [*self.sections, *more]
        self.loaded = True

    def action_close(self) -> None:
        self.dismiss(None)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.copy_value)
        self.notify(self.copy_value, title="Copied", markup=False)

    def text(self) -> str:
        """Every section as plain text (for tests and a quick look)."""
        lines = []
        for section in self.sections:
            lines.append(section.title)
            lines.extend(f"{label}: {value.plain if isinstance(value, Text) else value}" for label, value in section.rows)
            if section.table is not None:
                for row in zip(*(column.cells for column in section.table.columns), strict=False):
                    lines.append(" | ".join(cell.plain if isinstance(cell, Text) else str(cell) for cell in row))
            if section.note:
                lines.append(section.note)
        return "\n".join(lines)
