"""Signal handlers that hand the work to the reactor and can be taken back.

A handler runs between two bytecodes of whatever the reactor was doing, so it does
nothing itself but ``callFromThread``, which wakes the reactor to run ``action`` safely.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from twisted.internet.interfaces import IReactorFromThreads


class SignalHandler:
    """``action`` runs in the reactor on ``signum`` while installed; ``uninstall`` puts back
    whatever handler was there before."""

    def __init__(self, reactor: IReactorFromThreads, signum: int, action: Callable[[], Any]):
        self.reactor = reactor
        self.signum = signum
        self.action = action
        self.previous: Any = None
        self.installed = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.reactor.callFromThread(self.action)

    def install(self) -> None:
        self.previous = signal.signal(self.signum, self._on_signal)
        self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            signal.signal(self.signum, self.previous)
            self.installed = False
