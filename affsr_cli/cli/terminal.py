"""The CLI's rich consoles: every string they show is text, not markup, with its control characters and
undecodable bytes escaped (text.printable). A file named `holiday [final].png` is listed as such, not
as `holiday .png`; one named with escape sequences cannot erase lines or set the window title."""

from __future__ import annotations

from rich.console import Console
from rich.progress import TextColumn
from rich.text import Text

from ..text import printable


class SafeConsole(Console):
    """A Console whose strings (print arguments, table cells and titles) are never markup and never carry
    control characters; style goes through Text objects."""

    def render_str(self, text: str, **kwargs) -> Text:
        kwargs["markup"] = False
        return super().render_str(printable(text), **kwargs)


class SafeTextColumn(TextColumn):
    """A progress column of plain text (file names): never markup, controls escaped."""

    def __init__(self, text_format: str, **kwargs):
        super().__init__(text_format, markup=False, **kwargs)

    def render(self, task) -> Text:
        return Text(printable(self.text_format.format(task=task)), style=self.style, justify=self.justify)
