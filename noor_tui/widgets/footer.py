"""The key bar at the bottom of every screen: Textual's Footer, built once with the screen and rebuilt only when its keys change."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.reactive import Reactive
from textual.types import NoActiveAppError
from textual.widgets import Footer

NARROW = 120
"""Under this many columns the keys sit closer together (Textual's compact footer), so they fit in 80."""


class KeyFooter(Footer):
    """Textual's footer, with its keys in a screen's first frame and no rebuilds that show the same keys.

    Textual's footer composes empty, then rebuilds itself (removes, mounts and styles every key)
    whenever the screen's bindings may have changed: each move of the focus, each time the screen
    is shown. A new screen sends two or three of these in its first frames, with the same keys, so
    its first frame has no keys and each rebuild costs a remount, a layout and a repaint (about
    10 ms of CPU of the usage screen's first visit). This one composes its keys with the screen (the
    screen's own and the app's; a focused widget that adds keys of its own gets a rebuild) and skips
    a rebuild that would show what is shown already.
    """

    def __init__(self) -> None:
        try:
            narrow = self.app.size.width < NARROW
        except NoActiveAppError:
            narrow = False
        super().__init__(compact=narrow)
        self._shown: tuple[Any, ...] | None = None

    def on_resize(self) -> None:
        self.compact = self.app.size.width < NARROW

    def compose(self) -> ComposeResult:
        # Textual's footer composes its keys once the screen has announced its bindings (`bindings_changed`,
        # by the screen's `bindings_updated_signal`). They are known as the screen is built, its own and
        # the app's: announced here, so the first frame has them (the rebuild that this asks for finds the
        # same keys and is skipped).
        self.bindings_changed(self.screen)
        self._shown = self._keys()
        for widget in super().compose():
            # A key's `compact` (bound to the footer's) starts True, and its watcher restyles the key as it mounts,
            # then again when the binding sets the footer's value: two restyles per key, about a tenth of the CPU
            # of building and showing a screen. Made with the footer's value and class, the key mounts styled
            # once and the watcher has nothing to change. (The palette's key is not bound: it keeps Textual's
            # way, compact always.)
            compact = getattr(type(widget), "compact", None)
            if isinstance(compact, Reactive) and not widget.has_class("-command-palette"):
                widget.set_reactive(compact, self.compact)
                widget.set_class(self.compact, "-compact", update=False)
            yield widget

    def _keys(self) -> tuple[Any, ...]:
        """What `compose` would show: the bindings shown in the footer, and the command palette's."""
        palette = self.app.COMMAND_PALETTE_BINDING
        return (
            self.show_command_palette,
            self.compact,
            tuple(
                (key, binding, enabled, tooltip)
                for key, (_node, binding, enabled, tooltip) in self.screen.active_bindings.items()
                if binding.show or key == palette
            ),
        )

    async def recompose(self) -> None:
        keys = self._keys()
        if keys == self._shown:
            return
        await super().recompose()
