"""The CSV every report format writes (report/csvtext.py): quoting the same on every
Python (3.11 and 3.12's csv write a bare CR unquoted), read back by the standard library's
reader as written; and the report's own CSV neutralising what a spreadsheet would run."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgproxy.report.csvtext import csv_text, neutralised
from tests.support.properties import property_settings as examples_of


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("field", ["a\rb", "a\r", "\r", "a\r\nb", "a\nb", 'say "hi"', "a,b", "\r\n"])
def test_a_field_with_cr_lf_quote_or_comma_is_quoted_and_reads_back_whole(field: str) -> None:
    text = csv_text([["first", field, "last"], ["next", "row", ""]])
    assert text.startswith('first,"') and text.endswith("\nnext,row,\n")
    assert read_back(text) == [["first", field, "last"], ["next", "row", ""]]


def test_a_row_with_a_cr_keeps_none_and_empty_fields_unquoted_and_numbers_as_written() -> None:
    assert csv_text([[None, "a\rb", "", 1.5, 7]]) == ',"a\rb",,1.5,7\n'


@examples_of(200)
@given(st.lists(st.lists(st.text(alphabet=st.sampled_from('ab,"\r\n\t =é\x00'), max_size=6), min_size=1,
                         max_size=4), max_size=5))
def test_any_rows_read_back_exactly_as_written(rows: list[list[str]]) -> None:
    assert read_back(csv_text(rows)) == rows


@pytest.mark.parametrize(("cell", "shown"), [
    ('=HYPERLINK("http://evil.example","click")', '\'=HYPERLINK("http://evil.example","click")'),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-1+1", "'-1+1"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\tindented", "'\tindented"),
    ("\rreturn", "'\rreturn"),
    ("-", "'-"),
    ("-1.5", "-1.5"), ("-42", "-42"), ("-.5", "-.5"), ("-1e3", "-1e3"),  # numbers stay numbers
    ("checkout", "checkout"), ("a=b", "a=b"), ("", ""),
])
def test_a_cell_a_spreadsheet_would_run_gets_a_quote_in_front(cell: str, shown: str) -> None:
    assert neutralised(cell) == shown
    assert read_back(csv_text([[cell]], formulas_neutralised=True)) == [[shown]]
    assert read_back(csv_text([[cell]])) == [[cell]]


def test_numbers_and_none_are_never_neutralised() -> None:
    assert [neutralised(v) for v in (-1.5, -3, None)] == [-1.5, -3, None]
