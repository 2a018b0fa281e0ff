"""The listening socket ``--workers``' processes share (``ops/listening.py``): made by the
first process and adopted, as the workers adopt it, on real sockets and the real reactor
(adopting a descriptor is what is tested); the port's one accept per wake-up on a
recording port."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol

from orgproxy.ops.listening import FirstProcessSocket, SharedAccepts, unix_socket_file


def other_process_holding(port: IListeningPort) -> socket.socket:
    """What a worker holds: the same listening socket under a descriptor of its own."""
    held = socket.socket(fileno=os.dup(port.fileno()))  # type: ignore[attr-defined]
    held.settimeout(5)
    return held


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("made_by", ["the first process, adopted", "Twisted's own listenTCP"])
async def test_a_stop_here_leaves_the_socket_accepting_in_the_other_processes(made_by: str) -> None:
    factory = Factory.forProtocol(Protocol)
    if made_by == "Twisted's own listenTCP":
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    else:
        port = await FirstProcessSocket(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
    other = other_process_holding(port)
    address = port.getHost()
    try:
        await port.stopListening()  # this process stops, the others serve on
        if made_by == "Twisted's own listenTCP":
            # Its shutdown() reached the other process's descriptor too: what adopting avoids.
            with pytest.raises(OSError):
                other.accept()
        else:
            with socket.create_connection((address.host, address.port), timeout=5):
                accepted, _ = other.accept()
                accepted.close()
    finally:
        other.close()


@pytest_twisted.ensureDeferred
async def test_a_unix_socket_keeps_the_mode_asked_for_and_its_file_and_lock_go_at_the_stop(tmp_path: Path) -> None:
    path = tmp_path / "orgproxy.sock"
    description = f"unix:{path}:mode=600"  # with Twisted's default lock file, path.lock
    port = await SharedAccepts(FirstProcessSocket(reactor, description), unix_socket_file(description)).listen(
        Factory.forProtocol(Protocol))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # not the 0o666 an adopted port sets
    assert os.path.islink(f"{path}.lock")  # held, as Twisted's own port holds it
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
    await port.stopListening()
    assert not path.exists() and not os.path.lexists(f"{path}.lock")


@pytest_twisted.ensureDeferred
async def test_a_worker_adopting_a_unix_socket_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "orgproxy.sock"
    made = socket.socket(socket.AF_UNIX)
    made.bind(str(path))
    made.listen()
    os.chmod(path, 0o600)
    try:
        port = await SharedAccepts(AdoptedStreamServerEndpoint(reactor, os.dup(made.fileno()), socket.AF_UNIX),
                                   unix_socket_file(f"unix:{path}:mode=600")).listen(Factory.forProtocol(Protocol))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        await port.stopListening()
    finally:
        made.close()


@pytest.mark.parametrize(("description", "socket_file"), [
    ("unix:/run/orgproxy/orgproxy.sock:mode=640", ("/run/orgproxy/orgproxy.sock", 0o640)),
    ("unix:/run/orgproxy.sock", ("/run/orgproxy.sock", 0o666)),
    ("unix:/run/orgproxy.sock:lockfile=0:backlog=10", ("/run/orgproxy.sock", 0o666)),
    ("tcp:18080:interface=127.0.0.1", None),
])
def test_the_socket_file_a_port_makes_is_read_from_its_description(
        description: str, socket_file: tuple[str, int] | None) -> None:
    assert unix_socket_file(description) == socket_file


def test_a_port_in_use_is_cannot_listen() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failed: list[Any] = []
        FirstProcessSocket(reactor, f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1").listen(
            Factory.forProtocol(Protocol)).addErrback(failed.append)
    (failure,) = failed
    assert failure.check(CannotListenError)


class RecordingPort:
    numberAccepts = 100

    def __init__(self) -> None:
        self.limits_seen: list[int] = []

    def doRead(self) -> None:
        self.limits_seen.append(self.numberAccepts)
        self.numberAccepts += 20  # what Twisted does after a full wake-up


class OnePortEndpoint:
    def __init__(self, port: RecordingPort):
        self.port = port

    def listen(self, factory: Any) -> Any:
        return succeed(self.port)


def test_the_shared_port_is_kept_and_accepts_one_connection_per_wake_up() -> None:
    port = RecordingPort()
    shared = SharedAccepts(OnePortEndpoint(port))  # type: ignore[arg-type]
    listened: list[Any] = []
    shared.listen(object()).addCallback(listened.append)  # type: ignore[arg-type]
    assert listened == [port] and shared.port is port
    port.doRead()
    port.doRead()
    assert port.limits_seen == [1, 1]
