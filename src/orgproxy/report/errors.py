"""The one failure the report knows how to tell: a line for the user, then exit 1."""

from __future__ import annotations


class ReportError(Exception):
    """Something to tell the user in one line, then exit 1."""
