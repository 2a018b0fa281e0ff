"""Where FOCUS rows go, one at a time: CSV (to a stream or a file) or Parquet (a file,
written in row groups), so that an export of any length holds one page and one row group
in memory. A file is written beside its name and renamed into place when whole: a failed
export leaves no half file behind. Parquet needs pyarrow (the `report` extra), imported
only when asked for."""

from __future__ import annotations

import os
import tempfile
from decimal import Decimal
from typing import Any, Protocol, TextIO

from orgproxy.report.csvtext import CsvWriter
from orgproxy.report.errors import ReportError
from orgproxy.report.focus import DATETIME, DECIMAL, Row, cell, decimal_text

# Parquet's decimals: 38 digits, 24 of them after the point (14 before: a hundred million
# million dollars, or tokens, a row). An amount with more decimals than that is refused
# rather than rounded.
PRECISION, SCALE = 38, 24
GROUP_ROWS = 4096  # rows a Parquet row group holds: what is in memory at once (pyarrow alone is 40 MiB)


class Sink(Protocol):
    def write(self, row: Row) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class CsvSink:
    """A header of column ids, then every row; null is an empty unquoted field (RFC 4180
    quoting otherwise: line items hold commas, names may hold a CR). The header waits for
    the first row (or the end), so that an export that fails at its first page prints
    nothing."""

    def __init__(self, stream: TextIO, names: tuple[str, ...]) -> None:
        self.writer = CsvWriter(stream)  # every value exactly as it is: programs read it
        self.names = names
        self.started = False

    def write(self, row: Row) -> None:
        if not self.started:
            self.start()
        # Most cells are null, text or an amount: only the rest go through cell().
        self.writer.writerow(["" if value is None else value if type(value) is str else
                              decimal_text(value) if type(value) is Decimal else cell(value)
                              for value in map(row.__getitem__, self.names)])

    def start(self) -> None:
        self.started = True
        self.writer.writerow(self.names)

    def close(self) -> None:
        if not self.started:
            self.start()

    def abort(self) -> None:
        pass


class FileSink:
    """A sink into a temporary file beside ``path``, renamed to ``path`` when closed."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        try:
            handle, self.partial = tempfile.mkstemp(prefix=".", suffix=".partial", dir=directory)
        except OSError as e:
            raise ReportError(f"{path}: {e.strerror}") from None
        os.close(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.partial, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600

    def done(self) -> None:
        try:
            os.replace(self.partial, self.path)
        except OSError as e:
            self.abort()
            raise ReportError(f"{self.path}: {e.strerror}") from None

    def abort(self) -> None:
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            pass


class CsvFile(FileSink):
    def __init__(self, path: str, names: tuple[str, ...]) -> None:
        super().__init__(path)
        self.file = open(self.partial, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed in close)
        self.csv = CsvSink(self.file, names)

    def write(self, row: Row) -> None:
        self.csv.write(row)

    def close(self) -> None:
        self.csv.close()
        self.file.close()
        self.done()

    def abort(self) -> None:
        self.file.close()
        super().abort()


def pyarrow_modules() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ReportError("--format focus-parquet needs pyarrow: pip install 'orgproxy[report]'") from None
    return pyarrow, pyarrow.parquet


class ParquetFile(FileSink):
    """Decimals as decimal128(38, 24), times as UTC timestamps, the rest (JSON too) as text."""

    def __init__(self, path: str, columns: tuple[tuple[str, str], ...]) -> None:
        self.pa, pq = pyarrow_modules()
        super().__init__(path)
        pa = self.pa
        self.types = {DECIMAL: pa.decimal128(PRECISION, SCALE), DATETIME: pa.timestamp("s", tz="UTC")}
        self.columns = columns
        self.schema = pa.schema([(name, self.types.get(kind, pa.string())) for name, kind in columns])
        self.values: dict[str, list[Any]] = {name: [] for name, _ in columns}
        self.count = 0
        self.writer = pq.ParquetWriter(self.partial, self.schema)

    def write(self, row: Row) -> None:
        for name, kind in self.columns:
            value = row[name]
            self.values[name].append(value if kind in self.types else cell(value))
        self.count += 1
        if self.count == GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.count:
            return
        pa = self.pa
        try:
            arrays = [pa.array(self.values[name], type=self.types.get(kind, pa.string()))
                      for name, kind in self.columns]
        except (pa.ArrowInvalid, OverflowError):
            raise ReportError(f"{self.path}: an amount has more than the {SCALE} decimal places Parquet's"
                              f" decimal columns hold here: --format focus (CSV) writes it whole") from None
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        for values in self.values.values():
            values.clear()
        self.count = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()
        self.done()

    def abort(self) -> None:
        try:
            self.writer.close()
        except (OSError, self.pa.ArrowException):
            pass  # the file goes anyway
        super().abort()

