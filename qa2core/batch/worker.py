"""Run one :class:`~qa2core.batch.Task` where an executor placed it.

The job runs in its own process (``python -m qa2core.batch.job``); this function only waits on
it, reading its progress lines, so the calling worker keeps its heartbeats (no GIL held) and a
crash stays inside the job. Its messages go to the job's log in the campaign's log directory
beside the jobs file; nothing is created beside PACKPATH before the job's own checks. Attempts are
counted in a small file beside the log, per campaign run: a task started again after its worker
died is attempt 2, which first waits for the dead attempt's process to let go of the PACKPATH
lock; attempt 3 is refused, so the job is reported failed, never lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa2core.batch import Event, Task
from qa2core.batch.job import PARENT_ENV
from qa2core.batch.ledger import now
from qa2core.planning import paths

LOCK_WAIT_S = 120.0
# The tasks running in this process (a worker) and their jobs' processes: stop_jobs() ends them
# when the campaign is stopped (Ctrl-C), so the worker closes with nothing left running.
_RUNNING: set[subprocess.Popen] = set()
_ACTIVE = [0]
_GUARD = threading.Lock()


@contextlib.contextmanager
def active() -> Any:
    """Counts a task running here until it has let go of everything (its file-system slot)."""
    with _GUARD:
        _ACTIVE[0] += 1
    try:
        yield
    finally:
        with _GUARD:
            _ACTIVE[0] -= 1


def busy() -> int:
    """How many tasks still run in this process."""
    with _GUARD:
        return _ACTIVE[0]


def stop_jobs(signum: int = signal.SIGTERM) -> int:
    """Signal every job process started here that still runs; how many."""
    with _GUARD:
        procs = [p for p in _RUNNING if p.poll() is None]
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.send_signal(signum)
    return len(procs)


def failed(task: Task, message: str, attempt: int = 0) -> dict[str, Any]:
    return {"status": "failed", "command": task.command, "errors": [message], "findings": [],
            "warnings": [], "bytes": 0, "duration": 0.0, "attempt": attempt, "log": task.log}


def _next_attempt(task: Task) -> int:
    path = Path(task.attempts)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    count = (data.get("count", 0) if isinstance(data, dict) and data.get("run") == task.run else 0) + 1
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"run": task.run, "count": count}))
    os.replace(tmp, path)
    return count


def _wait_for_lock(pack: str, timeout: float = LOCK_WAIT_S) -> None:
    """Until no process holds PACKPATH's lock (the interrupted attempt's job notices its worker
    died within a second and kills itself; on another host its flock goes with it)."""
    try:
        fd = os.open(paths.lock_file(Path(pack)), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # the job itself then says who holds it
                time.sleep(0.2)
    finally:
        os.close(fd)


def _tail(log: str) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 4096))
            lines = [x for x in fh.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _remove_partial_tars(task: Task, result: dict[str, Any]) -> None:
    """A tar job that failed (its process killed mid-write, say) leaves no partial tar: those of
    its PACKPATH's tars in its output directory that no process is writing are removed."""
    from qa2core.writing.archive import remove_partials

    try:
        args = json.loads(task.spec)["args"]
        pack = Path(args["packpath"])
        out = Path(args.get("out") or pack.parent)
        removed = remove_partials(out, f"{glob.escape(pack.name)}_*.tar")
    except (OSError, KeyError, ValueError):
        return
    if removed:
        result.setdefault("warnings", []).extend(
            f"{p}: removed the partial tar of the failed job" for p in removed)
        with contextlib.suppress(OSError), open(task.log, "a", encoding="utf-8") as log:
            log.writelines(f"qa2: batch: {p}: removed the partial tar of the failed job\n"
                           for p in removed)


def run_task(task: Task, emit: Callable[[Event], None]) -> dict[str, Any]:
    """Run the task's job to its end; the result dict (``status`` succeeded or failed)."""
    host = socket.gethostname()

    def tell(kind: str, **data: Any) -> None:
        with contextlib.suppress(Exception):  # progress is a courtesy: never stop the job
            emit({"job": task.job, "kind": kind, **data})

    try:  # the campaign's log directory, beside the jobs file: made by qa2 batch, never here
        attempt = _next_attempt(task)
    except OSError as exc:
        return failed(task, f"{exc.filename}: {exc.strerror}: cannot write the job's log (the "
                      "workers must see the jobs file's directory)")
    if attempt > task.max_attempts:
        from qa2core.batch.job import already_done

        with contextlib.suppress(Exception):  # a finished job started again: its result stands
            done = already_done(json.loads(task.spec))
            if done is not None:
                return {**done, "attempt": attempt, "log": task.log}
        return failed(task, f"interrupted {attempt - 1} times by the death of the worker running "
                      "it; not tried again (run qa2 batch again to retry)", attempt - 1)
    tell("started", attempt=attempt, host=host, pid=os.getpid())
    if attempt > 1 and task.lock:
        _wait_for_lock(task.lock)
    result = None
    with open(task.log, "a", encoding="utf-8", errors="backslashreplace") as log:
        log.write(f"=== qa2 batch {now()}: {task.command} job {task.job!r}, attempt {attempt}, "
                  f"on {host} (worker pid {os.getpid()})\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "qa2core.batch.job", task.spec],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                text=True, encoding="utf-8", errors="replace",
                                env={**os.environ, PARENT_ENV: str(os.getpid())})
        with _GUARD:
            _RUNNING.add(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if isinstance(msg, dict) and "result" in msg:
                    result = msg["result"]
                elif isinstance(msg, dict) and "bytes" in msg:
                    tell("progress", attempt=attempt, bytes=msg["bytes"],
                         total=msg.get("total", 0))
            code = proc.wait()
        finally:
            with _GUARD:
                _RUNNING.discard(proc)
    if not isinstance(result, dict):
        why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        result = failed(task, f"the job's process ended without a result ({why}); last line "
                        f"of {task.log}: {_tail(task.log)}")
    if result.get("status") != "succeeded" and task.command == "tar":
        _remove_partial_tars(task, result)
    result.update(attempt=attempt, host=host, log=task.log)
    return result
