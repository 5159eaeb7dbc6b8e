"""A campaign: check the jobs file, skip what is up to date, run the rest, record everything.

The ledger beside the jobs file is written here alone. Running the same jobs file again skips
jobs whose last success is still true (same options, sources and package unchanged, see
:func:`up_to_date`) and runs the others, so a crashed campaign is finished by running it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa2core.batch import (
    INSTALL_HINT,
    BatchExecutor,
    Event,
    ExecutorSettings,
    Interrupted,
    Task,
    have_distributed,
)
from qa2core.batch import jobs as jobsfile
from qa2core.batch.job import inputs
from qa2core.batch.ledger import JOB_STATES, Ledger, fingerprint
from qa2core.batch.report import CampaignResult, Outcome, Progress, human_bytes, write_report
from qa2core.batch.worker import failed
from qa2core.errors import PluginFailed, Qa2Error, UsageError
from qa2core.planning import paths

DASK_PLUGIN = "qa2core.batch.dask"


def stale(job: jobsfile.Job, last: dict[str, Any] | None) -> str | None:
    """Why ``job`` must run (again), or None when its last success still holds. That success
    must have had the same options (spec hash), and the metadata fingerprints of what it read
    (ORIGPATH, README header, PI script; the package for verify and tar) and of what it wrote
    (package and ticket zip; tars) must match the files now. The package verified (full) when
    it was written."""
    if not last:
        return "no success recorded"
    if last.get("spec") != job.spec_hash:
        return "its options changed since it succeeded"
    result = last.get("result") or {}
    if fingerprint(*inputs(job.command, job.args)) != result.get("inputs"):
        return ("the package it reads changed" if job.command in ("verify", "tar")
                else "its sources changed")
    if job.command in ("package", "stage") and job.args.get("append", "none") == "none":
        ticket = str(paths.ticket_zip(job.target))
        if fingerprint(str(job.target), ticket) != result.get("outputs"):
            return "the package it wrote changed on disk"
    elif job.command == "tar":
        sums = [t + s for t in result.get("tars", []) for s in ("", ".sha256", ".md5sum")]
        if not sums or fingerprint(*sums) != result.get("outputs"):
            return "the tars it wrote changed on disk"
    return None


def up_to_date(job: jobsfile.Job, last: dict[str, Any] | None) -> str | None:
    """Why ``job`` need not run again (:func:`stale` found nothing), or None."""
    if not last or stale(job, last):
        return None
    what = {"verify": "package unchanged since it verified",
            "tar": "package and tars unchanged"}.get(job.command, "sources and package unchanged")
    return f"up to date ({what}; succeeded {last.get('time', '?')})"


@dataclass
class Planned:
    """What ``qa2 batch`` would do with a job, and why (``--check`` prints these)."""

    job: jobsfile.Job
    action: str  # "run" | "skip" | "not selected"
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job.id, "number": self.job.number, "command": self.job.command,
                "action": self.action, "reason": self.reason}


def select(campaign: jobsfile.Campaign, ledger: Ledger, only: Sequence[str] = (),
           retry_failed: bool = False) -> tuple[list[jobsfile.Job], dict[str, str]]:
    """The jobs this run considers (``--only``, ``--retry-failed``), and why each other job is
    left out. An unknown ``--only`` name is a usage error."""
    ids = {j.id for j in campaign.jobs}
    unknown = [n for n in only if n not in ids]
    if unknown:
        raise UsageError(f"--only {unknown[0]!r}: no such job in {campaign.path.name} (jobs: "
                         f"{', '.join(j.id for j in campaign.jobs)})")
    last = ledger.last_state() if retry_failed else {}
    chosen, left = [], {}
    for job in campaign.jobs:
        if only and job.id not in only:
            left[job.id] = "not selected (--only)"
        elif retry_failed and (last.get(job.id) or {}).get("state") != "failed":
            state = (last.get(job.id) or {}).get("state", "never run")
            left[job.id] = f"not selected (--retry-failed; its last record: {state})"
        else:
            chosen.append(job)
    return chosen, left


def unmet(chosen: list[jobsfile.Job], ledger: Ledger) -> list[str]:
    """One line per job of ``chosen`` that follows a job left out of this run which has not
    succeeded (or whose success no longer holds): it runs on whatever is there."""
    picked = {j.id for j in chosen}
    last, states = ledger.last_success(), ledger.last_state()
    out = []
    for job in chosen:
        for dep in job.after:
            if dep in picked or dep in last:
                continue
            state = (states.get(dep) or {}).get("state", "never run")
            out.append(f"{job.label} follows {dep!r}, which is not done (its last record: {state}) "
                       "and not selected in this run: it runs on what is there now")
    return out


def plan_campaign(path: Path | str, *, only: Sequence[str] = (), retry_failed: bool = False,
                  say: Callable[[str], None] = lambda _line: None) -> list[Planned]:
    """What ``qa2 batch`` would run or skip, and why, in the order it would consider them;
    nothing is run and nothing written (not even the ledger)."""
    campaign = jobsfile.load(path)
    ledger = Ledger(campaign.ledger)
    ledger.records()
    for line in ledger.warnings:
        say(f"qa2: warning: {line}")
    chosen, left = select(campaign, ledger, only, retry_failed)
    for line in unmet(chosen, ledger):
        say(f"qa2: batch: warning: {line}")
    last, runs, out = ledger.last_success(), set(), []
    for job in _topological(list(chosen)):
        follows = sorted(runs & set(job.after))
        why = (f"it follows {', '.join(map(repr, follows))}, which runs" if follows
               else stale(job, last.get(job.id)))
        if why:
            runs.add(job.id)
            out.append(Planned(job, "run", why))
        else:
            out.append(Planned(job, "skip", up_to_date(job, last.get(job.id)) or "up to date"))
    out += [Planned(j, "not selected", left[j.id]) for j in campaign.jobs if j.id in left]
    return sorted(out, key=lambda p: p.job.number)


def slug(job_id: str) -> str:
    """A job's file name in the log directory from its id alone (as :attr:`Job.slug`: an
    unnamed job's id, ``command:PACKPATH``, is never a plain file name)."""
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", job_id).strip("._")[:60]
    if plain == job_id:
        return plain
    return f"{plain or 'job'}-{hashlib.sha256(job_id.encode()).hexdigest()[:8]}"


def status(path: Path | str, say: Callable[[str], None] = lambda _line: None
           ) -> list[dict[str, Any]]:
    """From the ledger alone (the jobs file need not check: its inputs may be gone): each
    job's last state, its time and its log; jobs of the jobs file never run are listed too
    when the file still reads. A damaged ledger line is skipped with a warning."""
    path = Path(path)
    base = path.name.removesuffix(".toml")
    ledger = Ledger(path.with_name(base + ".ledger.jsonl"))
    logs = path.with_name(base + ".logs")
    order: dict[str, int] = {}
    with contextlib.suppress(Qa2Error, OSError):  # a jobs file that no longer checks
        order = {j.id: j.number for j in jobsfile.load(path).jobs}
    rows: dict[str, dict[str, Any]] = {}
    for rec in ledger.records():
        job = rec.get("job")
        if not isinstance(job, str) or rec.get("state") not in JOB_STATES:
            continue
        row = rows.setdefault(job, {"job": job, "log": str(logs / f"{slug(job)}.log")})
        row.update(state=rec["state"], time=rec.get("time", ""), run=rec.get("run", ""))
        if rec["state"] in ("succeeded", "failed", "skipped"):
            result = rec.get("result") or {}
            problem = (result.get("errors") or [""])[0] if rec["state"] == "failed" else ""
            row["problem"] = problem
            if result.get("log"):
                row["log"] = result["log"]
        else:
            row["problem"] = ""
    for line in ledger.warnings:
        say(f"qa2: warning: {line}")
    for job in order:
        rows.setdefault(job, {"job": job, "state": "never run", "time": "", "run": "",
                              "problem": "", "log": str(logs / f"{slug(job)}.log")})
    return sorted(rows.values(), key=lambda r: (order.get(r["job"], len(order) + 1), r["job"]))


def _task(job: jobsfile.Job, campaign: jobsfile.Campaign, run: str) -> Task:
    log = campaign.log(job)
    # job, run, ledger and done file: the job's process itself checks that it did not already
    # succeed in this run (a task Dask starts again), qa2core.batch.job.already_done
    spec = json.dumps({"command": job.command, "args": job.args, "job": job.id, "run": run,
                       "ledger": str(campaign.ledger), "done": str(log.with_suffix(".done"))},
                      ensure_ascii=True)
    return Task(job.id, job.number, job.command, spec, str(log),
                str(log.with_suffix(".attempts")), str(job.target) if job.writes else "",
                job.fs, run, after=job.after)


def executor_for(name: str, settings: ExecutorSettings, plugins: Any = None) -> BatchExecutor:
    """The one executor that answers ``name`` (``qa2_batch_executor``), failures attributed."""
    from qa2core.batch import dask_executor
    from qa2core.hooks.manager import get_plugin_manager

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
                 say: Callable[[str], None] = lambda _line: None, only: Sequence[str] = (),
                 retry_failed: bool = False) -> CampaignResult:
    """Run every job of the jobs file that is not up to date; one outcome per job. ``only``:
    those jobs alone; ``retry_failed``: the jobs whose last record is a failure, alone."""
    settings = settings or ExecutorSettings()
    if executor == "dask" and not have_distributed():
        raise Qa2Error(INSTALL_HINT)
    if settings.per_filesystem < 1 or settings.workers < 1:
        raise UsageError("--workers and --per-filesystem must be at least 1")
    campaign = jobsfile.load(path)
    runner = executor_for(executor, settings, plugins)
    preflight = getattr(runner, "preflight", None)
    if callable(preflight):  # a wrong --scheduler: exit 2, nothing recorded
        preflight()
    # an unknown --only name: exit 2 before anything is written (the ledger is only read here)
    chosen, _left = select(campaign, Ledger(campaign.ledger), only, retry_failed)
    ledger = Ledger(campaign.ledger).open()
    run = uuid.uuid4().hex[:12]
    try:
        ledger.append(run, state="campaign", jobs=len(campaign.jobs), executor=executor,
                      scheduler=settings.scheduler or "local", file=str(campaign.path),
                      **({"only": list(only)} if only else {}),
                      **({"retry_failed": True} if retry_failed else {}))
        ledger.records()  # each damaged line: one warning, then it is skipped
        for line in ledger.warnings:
            say(f"qa2: warning: {line}")
        if only or retry_failed:
            say(f"qa2: batch: {len(chosen)} of {len(campaign.jobs)} job(s) selected"
                f"{' (--only)' if only else ''}{' (--retry-failed)' if retry_failed else ''}")
        for line in unmet(chosen, ledger):
            say(f"qa2: batch: warning: {line}")
        outcomes = _skip_done(campaign, chosen, ledger, run, say)
        todo = [j for j in chosen if j.id not in {o.job.id for o in outcomes}]
        interrupted = 0
        if todo:
            campaign.logs.mkdir(exist_ok=True)  # beside the jobs file: workers make no directory
            done, interrupted = _execute(todo, campaign, runner, ledger, run, say,
                                         Progress(len(chosen), len(outcomes)))
            outcomes += done
        result = CampaignResult(campaign.path, campaign.ledger, run, outcomes, interrupted)
        ledger.append(run, state="interrupted" if interrupted else "finished",
                      **{s: result.count(s) for s in ("succeeded", "failed", "skipped")},
                      **({"signal": interrupted} if interrupted else {}))
        result.report = write_report(result)
        if result.report:
            bad = result.count("failed") + result.count("interrupted")
            say(f"qa2: batch: report: {result.report} ({bad} failed or interrupted)")
        return result
    finally:
        ledger.close()


def _skip_done(campaign: jobsfile.Campaign, chosen: list[jobsfile.Job], ledger: Ledger, run: str,
               say: Callable[[str], None]) -> list[Outcome]:
    last = ledger.last_success()
    out, runs = [], set()
    for job in _topological(chosen):
        # a job that follows one that runs again reads what that one writes anew: it runs too
        reason = None if runs & set(job.after) else up_to_date(job, last.get(job.id))
        if not reason:
            runs.add(job.id)
            continue
        if reason:
            ledger.append(run, job=job.id, state="skipped", reason=reason)
            say(f"qa2: batch: {job.label}: skipped: {reason}")
            out.append(Outcome(job, "skipped", note=reason, log=str(campaign.log(job))))
    return out


def _topological(jobs: tuple[jobsfile.Job, ...] | list[jobsfile.Job]) -> list[jobsfile.Job]:
    """File order, each job after the jobs it follows (the jobs file has no cycle)."""
    out: list[jobsfile.Job] = []
    placed: set[str] = set()
    ids = {j.id for j in jobs}
    pending = list(jobs)
    while pending:
        ready = [j for j in pending if all(a in placed or a not in ids for a in j.after)] or pending[:1]
        out += ready
        placed |= {j.id for j in ready}
        pending = [j for j in pending if j.id not in placed]
    return out


def _waves(executor: BatchExecutor, tasks: list[Task], finished: dict[str, Outcome],
           on_event: Callable[[Event], None]):
    """For an executor that does not order tasks itself: the tasks in waves, each after the
    waves holding the jobs it follows; a task whose predecessor did not succeed is not run."""
    if getattr(executor, "supports_after", False) or not any(t.after for t in tasks):
        yield from executor.run(tasks, on_event)
        return
    from qa2core.batch.worker import failed as not_run

    ids, pending = {t.job for t in tasks}, list(tasks)
    while pending:
        wave = [t for t in pending if all(a not in ids or a in finished for a in t.after)]
        pending = [t for t in pending if t not in wave]
        runnable = []
        for t in wave:
            bad = [a for a in t.after if a in finished and finished[a].status != "succeeded"]
            if bad:
                yield t, not_run(t, f"not run: job {bad[0]!r}, which it follows (after), did "
                                 "not succeed")
            else:
                runnable.append(t)
        if runnable:
            yield from executor.run(runnable, on_event)


def _execute(todo: list[jobsfile.Job], campaign: jobsfile.Campaign, executor: BatchExecutor,
             ledger: Ledger, run: str, say: Callable[[str], None],
             progress: Progress) -> tuple[list[Outcome], int]:
    by_id = {j.id: j for j in todo}
    finished: dict[str, Outcome] = {}

    def on_event(event: Event) -> None:
        if event.get("kind") == "notice":
            say(f"qa2: batch: {event.get('message')}")
            return
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
            elif event.get("kind") == "progress" and job.id in progress.running:
                progress.running[job.id] = max(progress.running[job.id], int(event.get("bytes") or 0))
                if progress.due():
                    say(progress.line())

    say(f"qa2: batch: {len(todo)} job(s) to run on executor {executor.name}")
    tasks = [_task(j, campaign, run) for j in todo]
    lost = f"executor {executor.name} returned no result"
    interrupted = 0
    results = _waves(executor, tasks, finished, on_event)
    try:
        for task, result in results:
            if task.job not in finished:  # one result per job, whatever an executor yields
                _finish(by_id[task.job], result, finished, ledger, run, say, progress)
    except (KeyboardInterrupt, Interrupted) as exc:  # Ctrl-C, SIGTERM: stop, summarise
        interrupted = exc.signum if isinstance(exc, Interrupted) else 2
        say(f"qa2: batch: interrupted (signal {interrupted}): stopping; the jobs not finished "
            "have no record of success and run when qa2 batch runs again")
    except Exception as exc:  # the cluster went away: what did not finish is failed, not lost
        lost = f"executor {executor.name} failed: {exc!r}; run qa2 batch again to finish"
        say(f"qa2: error: {lost}")
    finally:
        try:
            results.close()  # the executor's cluster and client are shut down here
        except (KeyboardInterrupt, Interrupted):
            interrupted = interrupted or 2
        except Exception:
            pass
    for task in tasks:
        if task.job in finished:
            continue
        if interrupted:
            finished[task.job] = Outcome(by_id[task.job], "interrupted", note="interrupted",
                                         log=task.log)
        else:
            _finish(by_id[task.job], failed(task, lost), finished, ledger, run, say, progress)
    return list(finished.values()), interrupted


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
