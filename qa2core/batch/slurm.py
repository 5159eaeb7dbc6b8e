"""``qa2 batch --cluster slurm``: Dask workers as SLURM jobs, through dask-jobqueue's SLURMCluster.

The scheduler runs inside the ``qa2 batch`` process (on the login node); each worker is one
SLURM job: one process, one thread (qa2's jobs are processes of their own). What qa2 sets, and
why (docs/batch.md, "An HPC site"):

* ``--lifetime`` and ``--lifetime-stagger`` derived from the walltime, as Dask durations
  (``340m``, not ``5h40m``, which Dask cannot parse: every worker would die at start), so a
  worker leaves before SLURM kills it; the cluster *adapts* to ``jobs`` workers, so a worker
  that left, or whose SLURM job was cancelled, is replaced by a new job;
* the semaphore lease timeout (:data:`LEASE_CONFIG`, as qa2's LocalCluster): in this process
  for the scheduler, and exported in every job script for the workers, who register the
  per-file-system semaphores and refresh their leases (a dead worker's slot comes back within
  8 s, not after Dask's default 30 s plus 10 s);
* ``processes=1``, ``cores=1``, ``memory`` 4 GB (SLURM's ``--mem``), walltime 6 h, and the
  scheduler's dashboard on a free port, unless the site's Dask config (``jobqueue.slurm.*``,
  e.g. ``~/.config/dask/jobqueue.yaml`` or ``DASK_JOBQUEUE__SLURM__QUEUE``) or the caller says
  otherwise. Queue, account, the environment activation (``job-script-prologue``) and
  ``local-directory`` come from there too.

dask-jobqueue is in the ``batch`` extra; it is imported only when a cluster is started.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from qa2core.errors import Qa2Error, UsageError

# The same lease as qa2's LocalCluster (qa2core.batch.dask_executor.LOCAL_CONFIG): a dead
# worker's per-file-system slot is given back within lease-timeout + validation interval.
LEASE_CONFIG = {"distributed.scheduler.locks.lease-timeout": "6s",
                "distributed.scheduler.locks.lease-validation-interval": "2s"}
DEFAULTS = {"cores": 1, "processes": 1, "memory": "4GB", "walltime": "06:00:00"}
JOBQUEUE_WALLTIME = "00:30:00"  # dask-jobqueue's own default: qa2's 6 h applies instead
INSTALL_HINT = "--cluster slurm needs dask-jobqueue: pip install 'qa2core[batch]'"


def walltime_seconds(walltime: str) -> int:
    """SLURM's time formats: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(walltime).strip())
    if not m:
        raise UsageError(f"walltime {walltime!r}: not a SLURM time (HH:MM:SS or D-HH:MM:SS)")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        seconds = a * 60 + b
    else:  # MM
        seconds = a * 60
    if seconds < 120:
        raise UsageError(f"walltime {walltime!r}: at least 2 minutes (a worker leaves before it)")
    return seconds


def _duration(seconds: int) -> str:
    """A Dask duration with one unit: ``340m`` or ``1700s`` (``5h40m`` is no Dask duration)."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def lifetime_args(walltime: str) -> list[str]:
    """``dask worker`` options so a worker leaves on its own before SLURM's walltime kills it:
    lifetime 17/18 of the walltime, give or take 1/36 (6 h: ``340m`` +- ``10m``)."""
    seconds = walltime_seconds(walltime)
    return ["--lifetime", _duration(seconds * 17 // 18), "--lifetime-stagger",
            _duration(seconds // 36)]


def lease_exports() -> list[str]:
    """Job-script lines giving a worker the lease timeout (it registers the semaphores)."""
    return [f"export DASK_{key.upper().replace('.', '__').replace('-', '_')}={value}"
            for key, value in LEASE_CONFIG.items()]


def cluster_kwargs(**site: Any) -> dict[str, Any]:
    """The SLURMCluster keyword arguments qa2 uses: :data:`DEFAULTS` where neither ``site`` nor
    the Dask config (``jobqueue.slurm.*``) sets a value; the lifetime options for the walltime
    in force; the lease exports before the site's job-script prologue."""
    import dask

    def configured(key: str) -> Any:
        return dask.config.get(f"jobqueue.slurm.{key.replace('_', '-')}", None)

    kwargs: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        value = site.pop(key, None)
        if value is None:
            value = configured(key)
            if value is None or (key == "walltime" and value == JOBQUEUE_WALLTIME):
                value = default
        kwargs[key] = value
    extra = list(site.pop("worker_extra_args", None) or configured("worker_extra_args") or [])
    if "--lifetime" not in extra:
        extra = [*lifetime_args(kwargs["walltime"]), *extra]
    kwargs["worker_extra_args"] = extra
    prologue = list(site.pop("job_script_prologue", None) or configured("job_script_prologue") or [])
    kwargs["job_script_prologue"] = [*lease_exports(), *prologue]
    if not site.get("scheduler_options") and not configured("scheduler_options"):
        kwargs["scheduler_options"] = {"dashboard_address": ":0"}
    return {**kwargs, **site}


@contextmanager
def slurm_cluster(jobs: int, say: Callable[[str], None] = lambda _line: None,
                  **site: Any) -> Iterator[Any]:
    """A SLURMCluster of ``jobs`` workers (adaptive, minimum = maximum = ``jobs``: a worker
    that leaves or is cancelled is replaced); closed, its jobs cancelled, on leaving."""
    import dask

    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise Qa2Error(INSTALL_HINT) from exc
    kwargs = cluster_kwargs(**site)
    with dask.config.set(LEASE_CONFIG):
        try:
            cluster = SLURMCluster(**kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            raise Qa2Error(f"--cluster slurm: cannot start the SLURMCluster: {exc}") from exc
        try:
            cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
            say(f"qa2: batch: SLURM cluster: scheduler {cluster.scheduler_address}, {jobs} worker "
                f"job(s) ({kwargs['cores']} core(s), {kwargs['memory']}, walltime "
                f"{kwargs['walltime']}, {' '.join(kwargs['worker_extra_args'])})")
            yield cluster
        finally:
            cluster.close()
