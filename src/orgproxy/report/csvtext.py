"""CSV as every CSV the report writes it (its own, FOCUS's): RFC 4180 quoting, the same on
every supported Python, and, for a file people open in a spreadsheet, no cell a
spreadsheet would run as a formula.

Quoting: ``csv.QUOTE_MINIMAL`` quotes a field holding the delimiter, the quote or a
character of the line terminator. With ``\\n`` as the terminator, Python before 3.13
writes a field holding a bare CR unquoted, and a reader then splits the row there; a row
with a CR is written by a second writer whose terminator holds CR (so it quotes every CR
and LF), and its terminator put back. Everything else is ``csv`` itself.

Formulas (OWASP's advice on CSV injection): a cell starting with ``=``, ``+``, ``-`` (unless
it is a number), ``@``, TAB or CR may be run by a spreadsheet (``=HYPERLINK(...)``,
``+cmd|...``, ``@SUM(...)``); such a cell gets a single quote in front, which spreadsheets
show as text. Only the report's CSV does this: FOCUS's is read by programs and keeps every
value exactly.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import TextIO

from orgproxy.text import without_surrogates

__all__ = ["CsvWriter", "csv_text", "neutralised"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def neutralised(cell: object) -> object:
    """``cell``, with a single quote in front if it is text a spreadsheet could run."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


class _Line:
    """Where ``csv.writer`` puts a row: it writes each row in one call."""

    text = ""

    def write(self, text: str) -> None:
        self.text = text


class CsvWriter:
    """Rows as CSV onto ``out``, one at a time, as they are made: ``\\n`` line ends, every
    field holding a CR, an LF, a quote or a comma quoted; None and "" are both an empty
    unquoted field; a lone surrogate (which JSON can carry in a name, UTF-8 cannot) as
    U+FFFD."""

    def __init__(self, out: TextIO, *, formulas_neutralised: bool = False) -> None:
        self.out = out
        self.formulas_neutralised = formulas_neutralised
        self.line = _Line()
        self.writer = csv.writer(self.line, lineterminator="\n")
        self.quoting_cr = csv.writer(self.line, lineterminator="\r\n")

    def writerow(self, row: Sequence[object]) -> None:
        if self.formulas_neutralised:
            row = [neutralised(cell) for cell in row]
        self.writer.writerow(row)
        line = self.line.text
        if "\r" in line:  # a field holds a CR (the terminator is "\n"): write it again, CRs quoted
            self.quoting_cr.writerow(row)
            line = self.line.text[:-2] + "\n"
        self.out.write(without_surrogates(line))


def csv_text(rows: Iterable[Sequence[object]], *, formulas_neutralised: bool = False) -> str:
    """``rows`` as CSV text (see CsvWriter)."""
    out = io.StringIO()
    writer = CsvWriter(out, formulas_neutralised=formulas_neutralised)
    for row in rows:
        writer.writerow(row)
    return out.getvalue()
