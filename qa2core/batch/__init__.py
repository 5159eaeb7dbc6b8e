"""``qa2 batch``: many packaging jobs from one jobs file, on Dask or a site's executor.

Modules, each short and free of Typer (docs/batch.md is the user's page):

* :mod:`~qa2core.batch.jobs` — read and check the jobs file (TOML) before anything runs;
* :mod:`~qa2core.batch.ledger` — the campaign's truth on disk (JSON lines beside the jobs file)
  and the fingerprints that decide whether a finished job is still up to date;
* :mod:`~qa2core.batch.worker` — run one :class:`Task` where it was placed: attempt count, log,
  the job's own subprocess (``python -m qa2core.batch.job``), its progress and result;
* :mod:`~qa2core.batch.job` — that subprocess: the engine call, then ``verify``;
* :mod:`~qa2core.batch.dask_executor` — the built-in executor (``qa2_batch_executor`` "dask");
* :mod:`~qa2core.batch.run` — the campaign: check, skip what is done, run the rest, summarise.

Dask is an optional extra and is imported only inside the Dask executor.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

INSTALL_HINT = "qa2 batch needs Dask: pip install 'qa2core[batch]' (dask[distributed])"
MAX_ATTEMPTS = 2  # a job interrupted by a dying worker is tried once more, then reported failed
DEFAULT_PER_FILESYSTEM = 4


def have_distributed() -> bool:
    return importlib.util.find_spec("distributed") is not None


@dataclass(frozen=True)
class Task:
    """One job as an executor sees it: plain strings, JSON- and pickle-friendly.

    ``spec`` is the JSON the job subprocess reads (command and checked options, which it parses
    again where it runs); ``log`` and ``attempts`` are files in the campaign's log directory
    beside the jobs file (which exists: a worker creates no directory); ``lock`` is the PACKPATH
    whose lock a retry
    waits for ('' for verify); ``fs`` names the file system the job writes to (its mount point).
    """

    job: str
    number: int
    command: str
    spec: str
    log: str
    attempts: str
    lock: str
    fs: str
    run: str  # the campaign run's id: attempt counts restart with every run
    max_attempts: int = MAX_ATTEMPTS
    after: tuple[str, ...] = ()  # the jobs (ids) it follows: it starts when they succeeded

    def __post_init__(self) -> None:
        object.__setattr__(self, "after", tuple(self.after))  # JSON gives a list

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> Task:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class ExecutorSettings:
    """What ``qa2 batch`` was asked for; an executor uses what applies to it."""

    scheduler: str | None = None  # address of a running cluster; None: start one here
    workers: int = 1
    per_filesystem: int = DEFAULT_PER_FILESYSTEM
    no_workers_wait: float = 20.0  # say once that the cluster has no workers after this many s,
    no_workers_every: float = 120.0  # then again at this interval while it still has none


# {"job", "kind": "started" | "progress", "attempt", "host", "bytes"}, or
# {"kind": "notice", "message"}: a line qa2 batch prints as it is (e.g. no workers yet)
Event = dict[str, Any]


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) while a campaign runs: stop, record, summarise, exit 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class BatchExecutor(Protocol):
    """Runs tasks somewhere that sees the same paths; returned by ``qa2_batch_executor``.

    ``run`` yields ``(task, result)`` as tasks finish, in any order, one per task. It must hold
    at most ``settings.per_filesystem`` tasks with the same ``task.fs`` at once, run each with
    :func:`qa2core.batch.worker.run_task` (which returns the result dict, never raises for a job
    that fails), and may call ``on_event`` from any thread. A task it could not run at all
    yields :func:`qa2core.batch.worker.failed` with the reason.

    A task's ``after`` names jobs it follows. An executor whose class sets
    ``supports_after = True`` runs it only after those yielded ``succeeded`` (else yields it
    failed, not run); for any other executor the campaign hands the tasks over in waves, each
    wave's tasks following only jobs of earlier waves. ``preflight()``, if it has one, runs
    before anything is recorded and raises :class:`~qa2core.errors.UsageError` for settings it
    cannot use (a --scheduler that is not one).
    """

    name: str

    def run(self, tasks: Sequence[Task],
            on_event: Callable[[Event], None]) -> Iterator[tuple[Task, dict[str, Any]]]: ...
