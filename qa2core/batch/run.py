"""A campaign: check the jobs file, skip what is up to date, run the rest, record everything.

The ledger beside the jobs file is written here alone. Running the same jobs file again skips
jobs whose last success is still true (same options, sources and package unchanged, see
:func:`up_to_date`) and runs the others, so a crashed campaign is finished by running it again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa2core import paths
from qa2core.batch import INSTALL_HINT, BatchExecutor, Event, ExecutorSettings, Task, have_distributed
from qa2core.batch import jobs as jobsfile
from qa2core.batch.job import inputs
from qa2core.batch.ledger import Ledger, fingerprint
from qa2core.batch.report import CampaignResult, Outcome, Progress, human_bytes
from qa2core.batch.worker import failed
from qa2core.errors import PluginFailed, Qa2Error, UsageError

DASK_PLUGIN = "qa2core.batch.dask"


def up_to_date(job: jobsfile.Job, last: dict[str, Any] | None) -> str | None:
    """Why ``job`` need not run again, or None. Its last success must have had the same options
    (spec hash), and the metadata fingerprints of what it read (ORIGPATH, README header, PI
    script; the package for verify and tar) and of what it wrote (package and ticket zip; tars)
    must match the files now. The package verified (full) when it was written."""
    if not last or last.get("spec") != job.spec_hash:
        return None
    result = last.get("result") or {}
    if fingerprint(*inputs(job.command, job.args)) != result.get("inputs"):
        return None
    if job.command in ("package", "stage") and job.args.get("append", "none") == "none":
        ticket = str(paths.ticket_zip(job.target))
        if fingerprint(str(job.target), ticket) != result.get("outputs"):
            return None
    elif job.command == "tar":
        sums = [t + s for t in result.get("tars", []) for s in ("", ".sha256", ".md5sum")]
        if not sums or fingerprint(*sums) != result.get("outputs"):
            return None
    what = {"verify": "package unchanged since it verified",
            "tar": "package and tars unchanged"}.get(job.command, "sources and package unchanged")
    return f"up to date ({what}; succeeded {last.get('time', '?')})"


def _task(job: jobsfile.Job, campaign: jobsfile.Campaign, run: str) -> Task:
    log = campaign.log(job)
    # job, run, ledger and done file: the job's process itself checks that it did not already
    # succeed in this run (a task Dask starts again), qa2core.batch.job.already_done
    spec = json.dumps({"command": job.command, "args": job.args, "job": job.id, "run": run,
                       "ledger": str(campaign.ledger), "done": str(log.with_suffix(".done"))},
                      ensure_ascii=True)
    return Task(job.id, job.number, job.command, spec, str(log),
                str(log.with_suffix(".attempts")), str(job.target) if job.writes else "",
                job.fs, run)


def executor_for(name: str, settings: ExecutorSettings, plugins: Any = None) -> BatchExecutor:
    """The one executor that answers ``name`` (``qa2_batch_executor``), failures attributed."""
    from qa2core.batch import dask_executor
    from qa2core.manager import get_plugin_manager

    plugins = plugins or get_plugin_manager()
    if plugins.pm.get_plugin(DASK_PLUGIN) is None:
        plugins.register(dask_executor, DASK_PLUGIN)
    offers, given = [], {"name": name, "settings": settings}
    for impl in reversed(plugins.pm.hook.qa2_batch_executor.get_hookimpls()):
        try:  # by keyword, only the arguments the implementation takes (pluggy's opt-in)
            got = impl.function(**{k: v for k, v in given.items() if k in impl.argnames})
        except Exception as exc:
            raise PluginFailed(f"plugin {impl.plugin_name!r} failed in qa2_batch_executor: "
                               f"{exc!r}") from exc
        if got is not None:
            offers.append((impl.plugin_name, got))
    if not offers:
        raise UsageError(f"--executor {name!r}: no installed plugin offers it (built in: dask)")
    if len(offers) > 1:
        raise PluginFailed(f"--executor {name!r}: offered by {len(offers)} plugins "
                           f"({', '.join(n for n, _ in offers)}); disable one with QA2_DISABLE_PLUGINS")
    return offers[0][1]


def run_campaign(path: Path | str, *, settings: ExecutorSettings | None = None,
                 executor: str = "dask", plugins: Any = None,
                 say: Callable[[str], None] = lambda _line: None) -> CampaignResult:
    """Run every job of the jobs file that is not up to date; one outcome per job."""
    settings = settings or ExecutorSettings()
    if executor == "dask" and not have_distributed():
        raise Qa2Error(INSTALL_HINT)
    if settings.per_filesystem < 1 or settings.workers < 1:
        raise UsageError("--workers and --per-filesystem must be at least 1")
    campaign = jobsfile.load(path)
    ledger = Ledger(campaign.ledger).open()
    run = uuid.uuid4().hex[:12]
    try:
        ledger.append(run, state="campaign", jobs=len(campaign.jobs), executor=executor,
                      scheduler=settings.scheduler or "local", file=str(campaign.path))
        outcomes = _skip_done(campaign, ledger, run, say)
        todo = [j for j in campaign.jobs if j.id not in {o.job.id for o in outcomes}]
        if todo:
            campaign.logs.mkdir(exist_ok=True)  # beside the jobs file: workers make no directory
            outcomes += _execute(todo, campaign, executor_for(executor, settings, plugins), ledger,
                                 run, say, Progress(len(campaign.jobs), len(outcomes)))
        result = CampaignResult(campaign.path, campaign.ledger, run, outcomes)
        ledger.append(run, state="finished", **{s: result.count(s)
                                                for s in ("succeeded", "failed", "skipped")})
        return result
    finally:
        ledger.close()


def _skip_done(campaign: jobsfile.Campaign, ledger: Ledger, run: str,
               say: Callable[[str], None]) -> list[Outcome]:
    last = ledger.last_success()
    out = []
    for job in campaign.jobs:
        reason = up_to_date(job, last.get(job.id))
        if reason:
            ledger.append(run, job=job.id, state="skipped", reason=reason)
            say(f"qa2: batch: {job.label}: skipped: {reason}")
            out.append(Outcome(job, "skipped", note=reason, log=str(campaign.log(job))))
    return out


def _execute(todo: list[jobsfile.Job], campaign: jobsfile.Campaign, executor: BatchExecutor,
             ledger: Ledger, run: str, say: Callable[[str], None],
             progress: Progress) -> list[Outcome]:
    by_id = {j.id: j for j in todo}
    finished: dict[str, Outcome] = {}

    def on_event(event: Event) -> None:
        job = by_id.get(event.get("job", ""))
        with progress.lock:
            if job is None or job.id in finished:
                return  # late news of a job already over
            if event.get("kind") == "started":
                progress.running[job.id] = 0
                ledger.append(run, job=job.id, attempt=event.get("attempt"), state="started",
                              host=event.get("host"), pid=event.get("pid"))
                say(f"qa2: batch: {job.label}: started (attempt {event.get('attempt')} on "
                    f"{event.get('host')})")
                say(progress.line())
            elif event.get("kind") == "progress":
                progress.running[job.id] = int(event.get("bytes") or 0)
                if progress.due():
                    say(progress.line())

    say(f"qa2: batch: {len(todo)} job(s) to run on executor {executor.name}")
    tasks = [_task(j, campaign, run) for j in todo]
    lost = f"executor {executor.name} returned no result"
    try:
        for task, result in executor.run(tasks, on_event):
            _finish(by_id[task.job], result, finished, ledger, run, say, progress)
    except Exception as exc:  # the cluster went away: what did not finish is failed, not lost
        lost = f"executor {executor.name} failed: {exc!r}; run qa2 batch again to finish"
        say(f"qa2: error: {lost}")
    for task in tasks:
        if task.job not in finished:
            _finish(by_id[task.job], failed(task, lost), finished, ledger, run, say, progress)
    return list(finished.values())


def _finish(job: jobsfile.Job, result: dict[str, Any], finished: dict[str, Outcome],
            ledger: Ledger, run: str, say: Callable[[str], None], progress: Progress) -> None:
    outcome = Outcome.from_result(job, result)
    with progress.lock:
        finished[job.id] = outcome
        progress.running.pop(job.id, None)
        progress.done += 1
        progress.failed += outcome.status != "succeeded"
        progress.written += outcome.bytes
        ledger.append(run, job=job.id, attempt=outcome.attempts, state=outcome.status,
                      duration=round(outcome.duration, 3), bytes=outcome.bytes, spec=job.spec_hash,
                      result=result)
        tail = f": {outcome.first_problem()}" if outcome.status != "succeeded" else ""
        say(f"qa2: batch: {job.label}: {outcome.status} in {outcome.duration:.1f} s, "
            f"{human_bytes(outcome.bytes)}{tail} (log: {outcome.log})")
        say(progress.line())
