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
from qa2core.batch.worker import active, busy, failed, run_task, stop_jobs

TOPIC = "qa2-batch"
STOP_WAIT_S = 20.0  # for the running tasks to end after their jobs' processes were stopped
LOCAL_CONFIG = {"distributed.scheduler.locks.lease-timeout": "6s",
                "distributed.scheduler.locks.lease-validation-interval": "2s"}


def _remote(task: Task, semaphore: str, limit: int, *before: dict[str, Any]) -> dict[str, Any]:
    """Runs on a worker: wait for a slot on the task's file system, then run the job. ``before``:
    the results of the jobs it follows (``after``); it runs only if each succeeded."""
    from distributed import Semaphore, get_worker

    for dep, result in zip(task.after, before, strict=False):
        if not isinstance(result, dict) or result.get("status") != "succeeded":
            return failed(task, f"not run: job {dep!r}, which it follows (after), did not succeed")

    worker = get_worker()

    def emit(event: Event) -> None:
        worker.log_event(TOPIC, {"run": task.run, **event})

    with active(), Semaphore(max_leases=limit, name=semaphore):
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


def _ordered(tasks: Sequence[Task]) -> list[Task]:
    """Round-robin over file systems, each task after the tasks it follows (``after``)."""
    pending, out, placed = _interleave(tasks), [], set()
    ids = {t.job for t in tasks}
    while pending:
        ready = [t for t in pending if all(d in placed or d not in ids for d in t.after)]
        if not ready:  # a cycle: refused by the jobs file's check; never here
            ready = pending[:1]
        for t in ready:
            out.append(t)
            placed.add(t.job)
        pending = [t for t in pending if t.job not in placed]
    return out


class DaskExecutor:
    name = "dask"
    supports_after = True  # dependencies as Dask's own (qa2core.batch.run runs waves otherwise)

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    def preflight(self) -> None:
        """Before the ledger is touched: a --scheduler that is no Dask scheduler, or that does
        not answer, is a usage error (exit 2) within seconds (qa2core.batch.probe)."""
        if self.settings.scheduler:
            from qa2core.batch.probe import check_scheduler

            check_scheduler(self.settings.scheduler)

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
            futures: dict[Any, Task] = {}
            by_job: dict[str, Any] = {}
            for t in _ordered(tasks):
                before = [by_job[d] for d in t.after if d in by_job]
                future = client.submit(_remote, t, f"qa2-batch-fs{limit}:{t.fs}", limit, *before,
                                       key=f"qa2-batch-{t.run}-{t.number}", pure=False)
                futures[future] = t
                by_job[t.job] = future
            watch = _NoWorkers(client, self.settings, on_event)
            stopped = False
            try:
                done = as_completed(list(futures))
                for future in done:
                    task = futures.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:
                        result = failed(task, _why(exc))
                    yield task, result
                    # its result is in the ledger now: let go of it, so that Dask never
                    # recomputes it when the worker holding it dies (a job that follows it
                    # holds it until it starts; the job's process refuses to run twice)
                    if not any(task.job in t.after for t in futures.values()):
                        by_job.pop(task.job, None)
                    future.release()
                    del future
            except BaseException:  # Ctrl-C, SIGTERM, or the campaign closed us early
                stopped = True
                raise
            finally:
                watch.stop()
                if stopped and not self.settings.scheduler:
                    _stop_local(client, list(futures))
            client.unsubscribe_topic(TOPIC)


def _stop_local(client: Any, futures: list[Any], wait: float = STOP_WAIT_S) -> None:
    """The campaign stops early on our own LocalCluster: nothing queued starts, each running
    job's process is ended (SIGTERM), and the tasks are let finish (they give back their
    file-system slots) before the cluster closes, so no worker is torn down mid-task. A cluster
    of your own (--scheduler) is left alone: its jobs run to their end."""
    import contextlib
    import time

    with contextlib.suppress(Exception):
        client.cancel(futures)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            client.run(stop_jobs)
            if not any(client.run(busy).values()):
                return
        except Exception:
            return
        time.sleep(0.1)


class _NoWorkers:
    """Says once, after ``settings.no_workers_wait`` seconds, that the cluster has no worker,
    then every ``settings.no_workers_every`` seconds while it still has none."""

    def __init__(self, client: Any, settings: ExecutorSettings,
                 on_event: Callable[[Event], None]) -> None:
        import threading

        self.client, self.settings, self.on_event = client, settings, on_event
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="qa2-no-workers")
        self.thread.start()

    def _workers(self) -> int:
        try:
            return len(self.client.scheduler_info().get("workers", {}))
        except Exception:
            return -1

    def _watch(self) -> None:
        wait, every = self.settings.no_workers_wait, self.settings.no_workers_every
        idle = 0.0
        next_say = wait
        while not self.stopped.wait(0.5):
            idle = idle + 0.5 if self._workers() == 0 else 0.0
            if idle == 0.0:
                next_say = wait
            elif idle >= next_say:
                self.on_event({"kind": "notice", "message": (
                    f"the scheduler {self.settings.scheduler or '(local)'} has no workers "
                    f"(none for {idle:.0f} s); the jobs start when workers join "
                    "(`dask worker ADDRESS`), or press Ctrl-C")})
                next_say = idle + every

    def stop(self) -> None:
        self.stopped.set()


@hookimpl(trylast=True)
def qa2_batch_executor(name: str, settings: ExecutorSettings) -> DaskExecutor | None:
    """The built-in executor, ``dask``."""
    return DaskExecutor(settings) if name == "dask" else None
