"""Which of the daemon's processes this one is, and what it runs on: its logs (level,
namespace, and the observer offered to twistd), the allocator's settings, the run
directory it shares with the others (``--workers``), and its metrics, made before any
other part makes one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.logger import ILogObserver

from orgproxy.daemon.options import Options
from orgproxy.infra import metrics
from orgproxy.infra.logs import log, observer_for, set_level
from orgproxy.infra.memory import keep_large_buffers
from orgproxy.infra.rundir import RunDirectory


@dataclass(frozen=True)
class ThisProcess:
    is_worker: bool  # one of --workers' other processes (given --worker-fd), not the first
    run: RunDirectory | None  # what the processes share, with --workers
    metrics: metrics.Metrics
    twistd_options: Mapping[str, Any] | None  # twistd's own, when twistd runs it
    # The log observer to offer twistd (see logs.text_lines), or None for twistd's own.
    log_observer: ILogObserver | None


def start_process(options: Options) -> ThisProcess:
    set_level(options["log-level"])
    keep_large_buffers()
    is_worker = options["worker-fd"] is not None
    if is_worker:
        log.namespace = f"orgproxy.worker{options['worker-number']}"
    run = run_directory(options)
    # Before any metric exists: with workers, every process writes its own to the run
    # directory, and a scrape reads them all.
    process_metrics = metrics.start(run.metrics if run is not None else None, first_process=not is_worker)
    twistd_options = getattr(options, "parent", None)
    observer = observer_for(options["log-format"], twistd_options) if twistd_options is not None else None
    return ThisProcess(is_worker, run, process_metrics, twistd_options, observer)


def run_directory(options: Options) -> RunDirectory | None:
    """Where the daemon's processes share what they write, with --workers (else None): the
    first process makes it afresh, a worker finds it."""
    if options["workers"] == 1 and options["worker-fd"] is None:
        return None
    run = RunDirectory.under(options["state-dir"])
    try:
        if options["worker-fd"] is None:
            run.prepare()
        else:
            run.check()
    except OSError as e:
        why = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        raise SystemExit(f"orgproxy: --state-dir: the directory the workers share: {why}") from None
    return run
