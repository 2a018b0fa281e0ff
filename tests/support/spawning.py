"""A memory reactor that records the processes it is asked to spawn (``--workers``' pool),
and lets a test end them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.error import ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

LISTENING_FD = 7  # the listening socket's descriptor, as the memory ports say
# A daemon of two processes in memory: its first process makes a real listening socket
# (and the memory reactor adopts it), so on a port the system picks.
TWO_WORKERS = ("--workers", "2", "--port", "tcp:0:interface=127.0.0.1")


@dataclass
class FakeProcess:
    pid: int | None
    signals: list[int] = field(default_factory=list)

    def signalProcess(self, signum: int) -> None:
        self.signals.append(signum)


@dataclass
class Spawned:
    protocol: Any
    args: list[str]
    env: dict[str, str]
    child_fds: dict[int, Any]
    process: FakeProcess

    def end(self, reason: Exception | None = None) -> None:
        """The process ends (by default with status 1)."""
        self.process.pid = None
        self.protocol.processEnded(Failure(reason or ProcessTerminated(exitCode=1)))


class SpawningReactor(MemoryReactorClock):
    """A memory reactor that records the processes it is asked to spawn."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[Spawned] = []

    def spawnProcess(self, processProtocol: Any, executable: str, args: list[str], env: dict[str, str],
                     path: str | None = None, uid: int | None = None, gid: int | None = None,
                     usePTY: bool = False, childFDs: dict[int, Any] | None = None) -> FakeProcess:
        assert executable == args[0]
        process = FakeProcess(pid=1000 + len(self.spawned))
        processProtocol.makeConnection(process)
        self.spawned.append(Spawned(processProtocol, args, env, dict(childFDs or {}), process))
        return process

    def alive(self) -> list[Spawned]:
        return [s for s in self.spawned if s.process.pid is not None]

    def adoptStreamPort(self, fileno: int, addressFamily: Any, factory: Any) -> Any:
        # The first process's socket, adopted (the test gives it a --port of tcp:0): a port
        # with a descriptor, for the pool to hand the workers.
        listening = super().adoptStreamPort(fileno, addressFamily, factory)
        listening.fileno = lambda: LISTENING_FD
        return listening
