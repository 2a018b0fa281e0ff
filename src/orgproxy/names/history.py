"""Remember every name ever learned from the Admin API, across restarts.

Deleted API keys vanish from the Admin API but stay in historical usage forever,
so the names discovery learns are kept in a small SQLite store under the state
directory, each with the provider it was learned from (OpenAI or Anthropic).  A store of
the first schema (OpenAI's alone) is migrated in place, its names kept as OpenAI's.  A
corrupt store is moved aside and replaced, never fatal: losing old names is better than
refusing to start.  Problems are returned, not logged.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from orgproxy.snapshot import Learned

__all__ = ["FILENAME", "SCHEMA_VERSION", "History", "Remembered"]

FILENAME = "history.sqlite3"
SCHEMA_VERSION = 2

_FIELDS = ("redacted_value", "email", "project_id", "owner_type", "owner_id", "owner_name")
_COLUMNS = ("id_field", "id", "name", *_FIELDS, "provider", "first_seen", "last_seen")
# (column, position in the primary key or 0) as PRAGMA table_info reports them.
_EXPECTED_TABLE = tuple((c, {"provider": 1, "id_field": 2, "id": 3}.get(c, 0)) for c in _COLUMNS)
_CREATE = (
    "CREATE TABLE IF NOT EXISTS learned (id_field TEXT NOT NULL, id TEXT NOT NULL,"
    " name TEXT NOT NULL, " + ", ".join(f"{c} TEXT" for c in _FIELDS) + ","
    " provider TEXT NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL,"
    " PRIMARY KEY (provider, id_field, id))"
)
# Schema 1, before Anthropic: no provider column, every name OpenAI's.
_V1_COLUMNS = ("id_field", "id", "name", *_FIELDS, "first_seen", "last_seen")
_V1_TABLE = tuple((c, {"id_field": 1, "id": 2}.get(c, 0)) for c in _V1_COLUMNS)
_MIGRATE_V1 = (
    "ALTER TABLE learned RENAME TO learned_v1",
    _CREATE,
    f"INSERT INTO learned ({', '.join(_V1_COLUMNS)}, provider)"
    f" SELECT {', '.join(_V1_COLUMNS)}, 'openai' FROM learned_v1",
    "DROP TABLE learned_v1",
)
# A None in the new record keeps what is stored: discovery may see less than before.
_UPSERT = (
    f"INSERT INTO learned ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    " ON CONFLICT (provider, id_field, id) DO UPDATE SET name = excluded.name, "
    + ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in _FIELDS)
    + ", last_seen = excluded.last_seen"
)
_COMPANIONS = ("-wal", "-shm", "-journal")
# Primary result codes that mean the file itself is damaged, as opposed to locked,
# unreadable or on a full disk, which moving the file aside would not cure.
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
# Errors that mean the caller misused the store (closed it, passed a None name): these
# are bugs and propagate as they are; every other sqlite3 error becomes an OSError.
_MISUSE = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError)


@dataclass(frozen=True, slots=True)
class Remembered:
    """A learned record with when its id was first and last learned (POSIX seconds)."""

    learned: Learned
    first_seen: float
    last_seen: float


class _Unusable(Exception):
    """The store could not be used as it was (``reason``) and was moved to ``aside``."""

    def __init__(self, reason: str, aside: str) -> None:
        super().__init__(reason, aside)
        self.reason = reason
        self.aside = aside


class History:
    """The store of every name ever learned, in ``directory/history.sqlite3``."""

    path: str

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, directory: str, now: float) -> tuple[History, str | None]:
        """Open or create the store; a corrupt one is moved aside (the problem says where).

        Raises OSError when the directory or file cannot be created or opened.
        """
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700)
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
        path = os.path.join(directory, FILENAME)
        try:
            return cls(path, _connect(path, now)), None
        except _Unusable as e:
            return cls(path, _connect(path, now)), (
                f"history store {path} was unusable ({e.reason}); moved it to {e.aside}"
                " and started an empty one"
            )

    @classmethod
    def unkept(cls, directory: str) -> History:
        """A store in memory only, for a run whose state directory cannot be written: names
        learned are remembered until the process ends, and no longer."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.execute(_CREATE)
        return cls(os.path.join(directory, FILENAME), conn)

    @staticmethod
    def read_only(directory: str) -> list[Remembered]:
        """What the store in ``directory`` remembers, read without writing anything (the
        directory may be read-only); empty if there is no store, or it cannot be read."""
        path = os.path.join(directory, FILENAME)
        if not os.path.isfile(path):
            return []
        location = "file:" + urllib.parse.quote(os.path.abspath(path))
        # A store in WAL mode needs its -shm file to be read: where that cannot be made,
        # the store is read as it stands (immutable), without what the WAL still holds.
        for options in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(location + options, uri=True, isolation_level=None)
            except sqlite3.Error:
                continue
            try:
                return History(path, conn).load()
            except OSError:
                continue
            finally:
                conn.close()
        return []

    def remember(self, learned: Iterable[Learned], now: float) -> int:
        """Upsert ``learned`` in one transaction; return how many ids were new.

        Raises OSError if the write fails (disk full, store locked); nothing is kept then.
        """
        rows = (
            (r.id_field, r.id, r.name, *(getattr(r, c) for c in _FIELDS), r.provider, now, now)
            for r in learned
        )
        try:
            with self._conn:
                # IMMEDIATE takes the write lock first, so both counts see the same store.
                self._conn.execute("BEGIN IMMEDIATE")
                before = self._count()
                self._conn.executemany(_UPSERT, rows)
                return self._count() - before
        except _MISUSE:
            raise
        except sqlite3.Error as e:
            raise OSError(f"cannot write {self.path}: {e}") from e

    def load(self) -> list[Remembered]:
        """Everything ever remembered, ordered by (id_field, id, provider); OSError if unreadable."""
        try:
            cursor = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM learned ORDER BY id_field, id, provider"
            )
            return [Remembered(Learned(*row[:-2]), row[-2], row[-1]) for row in cursor]
        except _MISUSE:
            raise
        except sqlite3.Error as e:
            raise OSError(f"cannot read {self.path}: {e}") from e

    def close(self) -> None:
        """Close the database; the store must not be used afterwards."""
        self._conn.close()

    def _count(self) -> int:
        count: int = self._conn.execute("SELECT count(*) FROM learned").fetchone()[0]
        return count


def _connect(path: str, now: float) -> sqlite3.Connection:
    """Open ``path`` ready for use; a corrupt store is moved aside and _Unusable raised."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # an existing store keeps whatever mode the operator gave it
    else:
        os.close(fd)
        os.chmod(path, 0o600)  # the umask may have taken bits off
    try:
        # Autocommit mode: transactions are begun explicitly and ended by `with conn:`.
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        raise OSError(f"cannot open {path}: {e}") from e
    try:
        reason = _unusable_because(conn)
        if reason is None:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                if _table(conn) == _V1_TABLE:
                    # One transaction: a migration cut short leaves the old table as it was.
                    for statement in _MIGRATE_V1:
                        conn.execute(statement)
                conn.execute(_CREATE)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return conn
    except sqlite3.Error as e:
        if getattr(e, "sqlite_errorcode", 0) & 0xFF not in _CORRUPT_CODES:
            conn.close()
            raise OSError(f"cannot use {path}: {e}") from e
        reason = str(e)
    # Rename before closing: closing checkpoints and deletes the -wal and -shm by
    # name, which would lose companions we mean to keep beside the old file.
    try:
        aside = _move_aside(path, now)
    finally:
        conn.close()
    raise _Unusable(reason, aside)


def _unusable_because(conn: sqlite3.Connection) -> str | None:
    """Why the store is not sound or not ours, or None; may raise sqlite3.Error."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        return "quick_check: " + "; ".join(map(str, problems[:3]))
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, 1, SCHEMA_VERSION):
        return f"schema version {version}, expected {SCHEMA_VERSION} (or 1, which is migrated)"
    table = _table(conn)
    # A version-0 file may hold either schema's table (a store made before versions were set).
    allowed = {0: (_V1_TABLE, _EXPECTED_TABLE), 1: (_V1_TABLE,)}.get(version, (_EXPECTED_TABLE,))
    if table and table not in allowed:
        return "table learned has columns " + ", ".join(c for c, _ in table)
    return None


def _table(conn: sqlite3.Connection) -> tuple[tuple[str, int], ...]:
    """The learned table's (column, position in the primary key), or () if there is none."""
    return tuple((row[1], row[5]) for row in conn.execute("PRAGMA table_info(learned)"))


def _move_aside(path: str, now: float) -> str:
    """Rename ``path`` and its companions to an unused ``.corrupt-<UTC time>`` name."""
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = aside = f"{path}.corrupt-{stamp}"
    n = 0
    # Two failures within one second must not overwrite the first file moved aside.
    while any(os.path.lexists(aside + s) for s in ("", *_COMPANIONS)):
        n += 1
        aside = f"{base}.{n}"
    os.rename(path, aside)
    for suffix in _COMPANIONS:
        if os.path.lexists(path + suffix):
            os.rename(path + suffix, aside + suffix)
    return aside
