"""Text from files (file names, tensor names, metadata) on its way to a terminal or a report.

A name is whatever bytes the file system or a file holds: escape sequences that erase lines, set the
window title or ask for a clipboard write (OSC 52), bytes that are not UTF-8 (Python holds them as
surrogate escapes, which cannot be encoded), and, in a spreadsheet, cells that read as formulas.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a line shows
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
UNDECODABLE = re.compile("[\udc80-\udcff]")  # os.fsdecode's surrogate escapes of bytes that are not UTF-8
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a cell starting so is a formula to Excel, LibreOffice, Sheets


def _escape(m: re.Match) -> str:
    c = m.group()
    if "\udc80" <= c <= "\udcff":
        return f"\\x{ord(c) - 0xDC00:02x}"  # the byte that was there
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(text: object) -> str:
    """`text` with every control character written as \\xNN (\\uNNNN) and every byte that is not UTF-8 as
    \\xNN: safe to show on a terminal, and still telling which name it was."""
    text = str(text)
    text = CONTROL.sub(_escape, text)
    return UNDECODABLE.sub(_escape, text)


def csv_cell(text: object) -> str:
    """A text cell of a CSV report: one that a spreadsheet would run as a formula (=HYPERLINK(...), +, -, @)
    gets a leading apostrophe, as OWASP and the spreadsheets themselves advise."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA) else text
