"""Noticing that a file changed: inotify where the platform has it, polling elsewhere.

The watcher only says "look again"; whether the file really changed is decided by its
stamp (``file_stamp``), so spurious wake-ups cost one ``stat``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.python.filepath import FilePath

from orgproxy.infra.logs import log

MODES = ("auto", "inotify", "poll", "off")
POLL_INTERVAL = 0.5  # seconds; changes are noticed within a second
SETTLE = 0.1  # seconds without events before looking: a burst of events is one change


def file_stamp(path: str) -> Hashable | None:
    """What identifies a version of the file at ``path`` (through symlinks); None if it is
    absent."""
    try:
        return status_stamp(os.stat(path))
    except OSError:
        return None


def status_stamp(status: os.stat_result) -> tuple[int, int, int, int]:
    """A file's device, inode, mtime and size: a file replaced by rename has another inode,
    one written in place another mtime or size."""
    return status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size


def inotify_available() -> bool:
    try:
        from twisted.internet import inotify

        inotify.INotify().loseConnection()
        return True
    except Exception:  # ImportError off Linux, INotifyError where the kernel says no
        return False


class FileWatcher:
    """Calls ``changed`` after the file at ``path`` (or a file in the directory at ``path``)
    may have changed, however it changed: written in place, replaced by rename, deleted
    and created again, or a symlink to it re-pointed."""

    def __init__(self, reactor: Any, path: str, changed: Callable[[], None], mode: str = "auto"):
        self.reactor = reactor
        self.path = os.path.abspath(path)
        self.changed = changed
        self.mode = mode
        self.notifier: Any = None
        self.watched: set[str] = set()
        self.pending: IDelayedCall | None = None
        self.poller: LoopingCall | None = None

    def start(self) -> None:
        mode = self.mode
        if mode == "auto":
            mode = "inotify" if inotify_available() else "poll"
        elif mode == "inotify" and not inotify_available():
            log.warn("inotify is not available here; polling {path} instead", event="inotify_unavailable",
                     path=self.path)
            mode = "poll"
        self.mode = mode
        if mode == "inotify":
            from twisted.internet import inotify

            self.notifier = inotify.INotify(self.reactor)
            self.notifier.startReading()
            self.watch_directories()
        elif mode == "poll":
            self.poller = LoopingCall(self.changed)
            self.poller.clock = self.reactor
            self.poller.start(POLL_INTERVAL, now=False)
        log.info("Watching {path} for changes ({mode})", event="watching", path=self.path, mode=mode)

    def stop(self) -> None:
        if self.pending is not None and self.pending.active():
            self.pending.cancel()
        if self.notifier is not None:
            self.notifier.loseConnection()
            self.notifier = None
            self.watched = set()
        if self.poller is not None and self.poller.running:
            self.poller.stop()

    def watch_directories(self) -> None:
        """Watch the file's directory, and its symlink target's if that is elsewhere (and a
        watched directory itself).

        Directories, not the file: editors and config tools replace a file by renaming a
        new one over it, which a watch on the old inode would never report.
        """
        from twisted.internet import inotify

        wanted = {os.path.dirname(self.path), os.path.dirname(os.path.realpath(self.path))}
        if os.path.isdir(self.path):
            # A directory of alias files: what happens to the files in it, too.
            wanted |= {self.path, os.path.realpath(self.path)}
        wanted = {d for d in wanted if os.path.isdir(d)}
        mask = (inotify.IN_MODIFY | inotify.IN_ATTRIB | inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_FROM
                | inotify.IN_MOVED_TO | inotify.IN_CREATE | inotify.IN_DELETE)
        for directory in wanted - self.watched:
            self.notifier.watch(FilePath(directory), mask=mask, callbacks=[self.on_event])
        for directory in self.watched - wanted:
            self.notifier.ignore(FilePath(directory))
        self.watched = wanted

    def on_event(self, _watch: object, _path: FilePath[Any], _mask: int) -> None:
        # Any event in the directory may be ours, not only one naming the file: a
        # Kubernetes ConfigMap, say, swaps a "..data" symlink the file points through.
        # Waiting for quiet turns a burst (truncate, write, close; or write, rename)
        # into one look at the finished file.
        if self.pending is not None and self.pending.active():
            self.pending.reset(SETTLE)
        else:
            self.pending = self.reactor.callLater(SETTLE, self.settled)

    def settled(self) -> None:
        self.pending = None
        if self.notifier is not None:
            self.watch_directories()  # a re-pointed symlink may lead elsewhere now
        self.changed()
