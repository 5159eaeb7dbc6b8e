"""``qa2 batch``: the campaign command, on the app of :mod:`qa2core.cli` (kept apart so each
module stays readable in one sitting; the engine of a campaign is :mod:`qa2core.batch`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from qa2core import cli
from qa2core.cli import JsonOpt, _boundary, _emit, _err, _examples, _print, app


@app.command(epilog=_examples("batch"))
def batch(
    jobs_file: Annotated[Path, typer.Argument(metavar="JOBS.toml", help="[defaults], then one "
                                              "[[job]] per run (docs/batch.md).")],
    scheduler: Annotated[str | None, typer.Option(help="A running Dask scheduler, e.g. "
                                                  "tcp://host:8786 (default: a LocalCluster here).")]
    = None,
    cluster: Annotated[str, typer.Option(help="local: a LocalCluster here; slurm: workers as "
                                         "SLURM jobs (dask-jobqueue; docs/batch.md).")] = "local",
    workers: Annotated[int | None, typer.Option(min=1, help="LocalCluster worker processes, or "
                                                "SLURM worker jobs (default: min(4, CPUs)).")] = None,
    per_filesystem: Annotated[int, typer.Option(min=1, help="At most N jobs write to one file "
                                                "system at once.")] = 4,
    executor: Annotated[str, typer.Option(help="Batch executor; plugins may add more "
                                          "(qa2_batch_executor).")] = "dask",
    check: Annotated[bool, typer.Option("--check", help="Say what would run or be skipped, and "
                                        "why; run nothing, write nothing.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Each job's last state, its time and "
                                         "its log, from the ledger; run nothing.")] = False,
    only: Annotated[list[str] | None, typer.Option("--only", metavar="NAME", help="Run only this "
                                                   "job (repeat --only for more).")]
    = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run only the jobs whose "
                                               "last record is a failure.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run many package, stage, verify and tar jobs on Dask; again to resume (exit 1 if any failed)."""
    import signal
    from contextlib import ExitStack
    from dataclasses import replace

    from qa2core.batch import ExecutorSettings, Interrupted
    from qa2core.batch import report as batch_report
    from qa2core.batch.run import run_campaign
    from qa2core.errors import UsageError

    names = list(only or [])
    if check or status:
        _batch_look(jobs_file, check, status, names, retry_failed, as_json)
        return

    def _stop(signum: int, _frame: Any) -> None:
        raise Interrupted(signum)

    settings = ExecutorSettings(scheduler, workers or min(4, os.cpu_count() or 1), per_filesystem)
    # SIGTERM as Ctrl-C: stop, summary, 143. SIGINT gets the same handler rather than Python's
    # default: a process started in the background by a non-interactive shell (nohup, a CI
    # runner, `cmd &` in a script) inherits SIGINT ignored, and `kill -INT` must still stop it.
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _boundary(as_json, {"ok": False, "jobs": []}), ExitStack() as stack:
            if cluster not in ("local", "slurm") or (cluster == "slurm" and scheduler):
                raise UsageError(f"--cluster {cluster!r}: local or slurm, and slurm without --scheduler")
            if cluster == "slurm":  # the scheduler runs here; each worker is a SLURM job
                from qa2core.batch import jobs as jobsfile
                from qa2core.batch.slurm import slurm_cluster

                jobsfile.load(jobs_file)  # a refused jobs file submits no SLURM job
                slurm = stack.enter_context(slurm_cluster(settings.workers, say=_err))
                settings = replace(settings, scheduler=slurm.scheduler_address)
            result = run_campaign(jobs_file, settings=settings, executor=executor, plugins=cli._plugins(),
                                  say=_err, only=names, retry_failed=retry_failed)
    except (KeyboardInterrupt, Interrupted) as exc:  # before the campaign began: nothing ran
        _err("qa2: batch: interrupted before any job ran")
        raise typer.Exit(128 + getattr(exc, "signum", 2)) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if as_json:
        _emit(result.to_json())
    elif sys.stdout.isatty():
        from rich.console import Console

        Console().print(batch_report.rich_table(result))
    else:
        _print(batch_report.plain_table(result))
    if result.interrupted:  # 130 Ctrl-C, 143 SIGTERM; the ledger is resumable
        raise typer.Exit(128 + result.interrupted)
    if not result.ok:
        raise typer.Exit(1)


def _batch_look(jobs_file: Path, check: bool, status: bool, names: list[str],
                retry_failed: bool, as_json: bool) -> None:
    """``qa2 batch --check`` and ``--status``: read the jobs file and the ledger, write nothing."""
    from qa2core.batch import run as batch_run
    from qa2core.errors import UsageError

    with _boundary(as_json, {"ok": False, "jobs": []}):
        if check and status:
            raise UsageError("--check or --status, not both")
        if status:
            rows = batch_run.status(jobs_file, say=_err)
            if as_json:
                _emit({"ok": True, "jobs_file": str(jobs_file), "jobs": rows})
                return
            for r in rows:
                when = f" {r['time']}" if r["time"] else ""
                problem = f": {r['problem']}" if r["problem"] else ""
                _print(f"{r['job']}: {r['state']}{when}{problem} (log: {r['log']})")
            return
        planned = batch_run.plan_campaign(jobs_file, only=names, retry_failed=retry_failed,
                                          say=_err)
        if as_json:
            _emit({"ok": True, "jobs_file": str(jobs_file), "jobs": [p.to_json() for p in planned],
                   "run": sum(p.action == "run" for p in planned)})
            return
        for p in planned:
            _print(f"{p.job.label}: {p.action}: {p.reason}")
        _err(f"qa2: batch: check: {sum(p.action == 'run' for p in planned)} to run, "
             f"{sum(p.action == 'skip' for p in planned)} to skip; nothing run, nothing written")
