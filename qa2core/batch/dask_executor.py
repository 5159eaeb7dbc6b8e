"""The built-in batch executor: Dask ``distributed``, on a LocalCluster or a running cluster.

* Workers: processes, one thread each. Each task waits on its job's subprocess
  (:func:`~qa2core.batch.worker.run_task`), so a worker never holds the GIL for long and its
  heartbeats keep flowing; the worker's memory monitor is off on the LocalCluster (the memory is
  the job's, in a child process it cannot see).
* Per file system: a ``distributed.Semaphore`` per mount point, ``max_leases`` = the limit. It
  lives in the scheduler, so it holds across every worker of a LocalCluster or a remote cluster
  with no worker started with special resources; a dead worker's lease is given back when its
  lease times out (6 s on the LocalCluster; ``distributed.scheduler.locks.lease-timeout``,
  30 s by default, on a cluster of your own).
* Progress: workers publish ``started``/``progress`` events on the topic ``qa2-batch``; the
  ``qa2 batch`` process alone writes the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from qa2core import hookimpl
from qa2core.batch import Event, ExecutorSettings, Task
from qa2core.batch.worker import failed, run_task

TOPIC = "qa2-batch"
LOCAL_CONFIG = {"distributed.scheduler.locks.lease-timeout": "6s",
                "distributed.scheduler.locks.lease-validation-interval": "2s"}


def _remote(task: Task, semaphore: str, limit: int) -> dict[str, Any]:
    """Runs on a worker: wait for a slot on the task's file system, then run the job."""
    from distributed import Semaphore, get_worker

    worker = get_worker()

    def emit(event: Event) -> None:
        worker.log_event(TOPIC, {"run": task.run, **event})

    with Semaphore(max_leases=limit, name=semaphore):
        return run_task(task, emit)


def _interleave(tasks: Sequence[Task]) -> list[Task]:
    """Round-robin over file systems, so a worker waiting for one file system's slot is rare."""
    by_fs: dict[str, list[Task]] = {}
    for t in tasks:
        by_fs.setdefault(t.fs, []).append(t)
    queues = list(by_fs.values())
    out: list[Task] = []
    while any(queues):
        out += [q.pop(0) for q in queues if q]
    return out


def _why(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ("the workers running it died too often (Dask KilledWorker: the scheduler's "
                f"distributed.scheduler.allowed-failures); {exc}")
    if name == "CancelledError":
        return "cancelled: the scheduler lost it (scheduler restarted or unreachable)"
    return f"could not run on the worker: {exc!r}"


class DaskExecutor:
    name = "dask"

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    @contextmanager
    def _client(self) -> Iterator[Any]:
        import dask
        from distributed import Client, LocalCluster

        if self.settings.scheduler:
            with Client(self.settings.scheduler, timeout="30s") as client:
                yield client
            return
        with dask.config.set(LOCAL_CONFIG), LocalCluster(
                n_workers=self.settings.workers, processes=True, threads_per_worker=1,
                memory_limit=0, dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            yield client

    def run(self, tasks: Sequence[Task],
            on_event: Callable[[Event], None]) -> Iterator[tuple[Task, dict[str, Any]]]:
        from distributed import as_completed

        runs = {t.run for t in tasks}

        def relay(event: tuple[float, Any]) -> None:
            msg = event[1]
            if isinstance(msg, dict) and msg.get("run") in runs:
                on_event(msg)

        limit = self.settings.per_filesystem
        with self._client() as client:
            client.subscribe_topic(TOPIC, relay)
            futures = {client.submit(_remote, t, f"qa2-batch-fs{limit}:{t.fs}", limit,
                                     key=f"qa2-batch-{t.run}-{t.number}"): t
                       for t in _interleave(tasks)}
            for future in as_completed(futures):
                task = futures[future]
                try:
                    result = future.result()
                except Exception as exc:
                    result = failed(task, _why(exc))
                yield task, result
            client.unsubscribe_topic(TOPIC)


@hookimpl(trylast=True)
def qa2_batch_executor(name: str, settings: ExecutorSettings) -> DaskExecutor | None:
    """The built-in executor, ``dask``."""
    return DaskExecutor(settings) if name == "dask" else None
