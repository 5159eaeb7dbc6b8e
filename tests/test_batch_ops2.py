"""Issue 19, the rest: ``qa2 batch --check``, ``--status``, ``--only``, ``--retry-failed`` and the
campaign's report file; Ctrl-C and SIGTERM on a real LocalCluster (exit 130/143, resumable); a
killed tar leaves no partial file; a job whose worker is gone kills itself before it writes; two
readers (tars) share a PACKPATH. Only events and their order are checked, never a duration: a
process is held by a hook (sitecustomize) until the test lets it go."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="qa2 batch needs the batch extra: "
                    "pip install 'qa2core[batch]' (make bootstrap installs it)")

from qa2core import engine
from qa2core.batch import Task
from qa2core.batch import jobs as jobsfile
from qa2core.batch.ledger import Ledger
from qa2core.batch.run import _task, run_campaign
from qa2core.errors import Qa2Error
from qa2core.planning import paths
from qa2core.testing import SerialExecutorPlugin, sampledata
from qa2core.writing import archive
from qa2core.writing.lock import PackLock

VENV_BIN = Path(sys.executable).parent
PROJECT = sampledata.TP_PROJECT

# Loaded by every process started with PYTHONPATH pointing at it (workers, job processes, qa2):
#  * QA2_TEST_HOLD_VERIFY: each verify notes "verify NAME PID PPID" and waits while the flag
#    file exists (NAME: the package's parent directory);
#  * QA2_TEST_HOLD_TAR: the first read of a tar's content notes "tarwrite PID" and waits while
#    the flag file exists (the partial tar exists then);
#  * QA2_TEST_HOLD_JOBSTART: a batch job's process, before anything of qa2 runs, notes
#    "jobstart PID PPID" and waits while the flag file exists;
#  * QA2_TEST_HOLD_PACKAGE: engine.package notes "package PID PPID" and waits likewise;
#  * QA2_TEST_TAR_BARRIER=N: each tar, holding the PACKPATH lock, notes "tarin PID" and waits
#    until N tars noted it (or 60 s: a lock that lets only one in fails the test, not hangs it).
HOOK = """\
import os, sys, time
events = os.environ.get("QA2_TEST_EVENTS")
flag = os.environ.get("QA2_TEST_FLAG", "")
def _note(line):
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)
def _hold():
    while os.path.exists(flag):
        time.sleep(0.02)
if events and os.environ.get("QA2_TEST_HOLD_JOBSTART") and os.environ.get("QA2_BATCH_WORKER_PID"):
    _note(f"jobstart {os.getpid()} {os.getppid()}")
    _hold()
if events and os.environ.get("QA2_TEST_HOLD_VERIFY"):
    import qa2core.checks.verify as _v
    _verify = _v.verify
    def verify(pack, *a, **k):
        _note(f"verify {os.path.basename(os.path.dirname(str(pack)))} {os.getpid()} {os.getppid()}")
        _hold()
        return _verify(pack, *a, **k)
    _v.verify = verify
if events and os.environ.get("QA2_TEST_HOLD_PACKAGE"):
    import qa2core.engine as _e
    _package = _e.package
    def package(*a, **k):
        _note(f"package {os.getpid()} {os.getppid()}")
        _hold()
        return _package(*a, **k)
    _e.package = package
if events and (os.environ.get("QA2_TEST_HOLD_TAR") or os.environ.get("QA2_TEST_TAR_BARRIER")):
    import qa2core.writing.archive as _a
    _read, _archive = _a._HashingReader.read, _a._archive
    _held = []
    def read(self, n=-1):
        if os.environ.get("QA2_TEST_HOLD_TAR") and not _held:
            _held.append(1)
            _note(f"tarwrite {os.getpid()}")
            _hold()
        return _read(self, n)
    def archive(*a, **k):
        want = int(os.environ.get("QA2_TEST_TAR_BARRIER") or 0)
        if want:
            _note(f"tarin {os.getpid()}")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with open(events) as fh:
                    if sum(x.startswith("tarin ") for x in fh) >= want:
                        break
                time.sleep(0.02)
        return _archive(*a, **k)
    _a._HashingReader.read, _a._archive = read, archive
"""


@pytest.fixture(scope="module")
def tp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The staged Total Power sample (ORIGPATH) and one real package of it (copy mode)."""
    base = tmp_path_factory.mktemp("tp")
    sampledata.build_staged_tp_tree(base / "src")
    (base / "pack").mkdir()
    engine.package(base / "src" / PROJECT, base / "pack" / PROJECT, mode="copy")
    return base


def _pack(tp: Path, where: Path, broken: bool = False) -> Path:
    """A copy of the sample package in ``where/PROJECT``; ``broken``: its manifest lies."""
    where.mkdir(parents=True)
    pack = where / PROJECT
    shutil.copytree(tp / "pack" / PROJECT, pack, symlinks=True)
    if broken:
        m = pack / "manifest-sha256.txt"
        m.write_text(m.read_text().replace("a", "b", 1))
    return pack


@pytest.fixture
def hook(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    d = tmp_path / "hook"
    d.mkdir()
    (d / "sitecustomize.py").write_text(HOOK)
    events, flag = tmp_path / "events.txt", tmp_path / "hold.flag"
    events.touch()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(d),
                                                                    os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("QA2_TEST_EVENTS", str(events))
    monkeypatch.setenv("QA2_TEST_FLAG", str(flag))
    monkeypatch.setenv("DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT", "6s")
    monkeypatch.setenv("DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL", "2s")
    return {"events": events, "flag": flag}


def _wait_for(what, condition, timeout: float = 120, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        assert proc is None or proc.poll() is None, f"{what}: the process ended ({proc.returncode})"
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def _lines(events: Path, word: str) -> list[list[str]]:
    return [x.split() for x in events.read_text().splitlines() if x.startswith(word + " ")]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _ends(ledger: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rec in Ledger(ledger).records():
        if rec.get("state") in ("succeeded", "failed"):
            out.setdefault(rec["job"], []).append(rec["state"])
    return out


# ------------------------------------------------------------- --check, --status, --only, ...


def _three(tp: Path, tmp_path: Path, broken: bool = False) -> Path:
    """v0, v1 (its package broken if asked) and v2, which follows v1."""
    packs = [_pack(tp, tmp_path / f"p{i}", broken=broken and i == 1) for i in range(3)]
    jobs = tmp_path / "jobs.toml"
    jobs.write_text("".join(
        f'[[job]]\nname = "v{i}"\ncommand = "verify"\npackpath = "{p}"\n'
        + ('after = ["v1"]\n' if i == 2 else "") + "\n" for i, p in enumerate(packs)))
    return jobs


def test_check_says_what_would_run_and_why_and_writes_nothing(tp, tmp_path: Path, qa2_pm,
                                                               run_qa2) -> None:
    qa2_pm.register(SerialExecutorPlugin(), name="serial-ops2")
    jobs = _three(tp, tmp_path)
    r = run_qa2("batch", jobs, "--check")  # no ledger yet: everything runs
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == ["job 1 (v0): run: no success recorded",
                                     "job 2 (v1): run: no success recorded",
                                     "job 3 (v2): run: it follows 'v1', which runs"]
    assert not jobs.with_name("jobs.ledger.jsonl").exists()
    assert not jobs.with_name("jobs.logs").exists()

    first = run_campaign(jobs, executor="serial", plugins=qa2_pm, only=["v0"])
    assert [(o.job.id, o.status) for o in first.outcomes] == [("v0", "succeeded")]
    before = _tree(tmp_path)
    r = run_qa2("batch", jobs, "--check", "--json")
    assert r.exit_code == 0, r.stderr
    plan = {j["job"]: (j["action"], j["reason"]) for j in json.loads(r.stdout)["jobs"]}
    assert plan["v0"][0] == "skip" and plan["v0"][1].startswith("up to date (package unchanged")
    assert plan["v1"] == ("run", "no success recorded")
    assert plan["v2"] == ("run", "it follows 'v1', which runs")
    (tmp_path / "p0" / PROJECT / "extra.txt").write_text("new\n")  # v0's package changed
    r = run_qa2("batch", jobs, "--check", "--only", "v0", "--only", "v2")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == ["job 1 (v0): run: the package it reads changed",
                                     "job 2 (v1): not selected: not selected (--only)",
                                     "job 3 (v2): run: no success recorded"]
    assert "job 3 (v2) follows 'v1', which is not done (its last record: never run)" in r.stderr
    (tmp_path / "p0" / PROJECT / "extra.txt").unlink()
    after = _tree(tmp_path)
    after.pop(str(Path("p0") / PROJECT), None)
    before.pop(str(Path("p0") / PROJECT), None)
    assert after == before  # the ledger, the logs, the packages: nothing written


def test_only_runs_those_jobs_and_names_what_they_follow_that_is_not_done(tp, tmp_path: Path,
                                                                          qa2_pm,
                                                                          run_qa2) -> None:
    qa2_pm.register(SerialExecutorPlugin(), name="serial-ops2")
    jobs = _three(tp, tmp_path)
    said: list[str] = []
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm, only=["v2"], say=said.append)
    assert [(o.job.id, o.status) for o in result.outcomes] == [("v2", "succeeded")]
    assert "qa2: batch: 1 of 3 job(s) selected (--only)" in said
    assert any(line.startswith("qa2: batch: warning: job 3 (v2) follows 'v1', which is not done")
               for line in said), said
    assert _ends(result.ledger) == {"v2": ["succeeded"]}
    before = result.ledger.read_bytes()
    r = run_qa2("batch", jobs, "--only", "nosuch")
    assert r.exit_code == 2 and "--only 'nosuch': no such job in jobs.toml" in r.stderr
    assert result.ledger.read_bytes() == before


def test_retry_failed_runs_the_failed_jobs_alone_and_the_report_names_them(tp, tmp_path: Path,
                                                                           qa2_pm) -> None:
    qa2_pm.register(SerialExecutorPlugin(), name="serial-ops2")
    jobs = _three(tp, tmp_path, broken=True)
    said: list[str] = []
    first = run_campaign(jobs, executor="serial", plugins=qa2_pm, say=said.append)
    assert {o.job.id: o.status for o in first.outcomes} == {
        "v0": "succeeded", "v1": "failed", "v2": "failed"}  # v2 follows v1: not run
    report = first.report
    assert report is not None and report.parent == tmp_path
    assert report.name.startswith("jobs.report-") and report.name.endswith(f"-{first.run}.txt")
    assert f"qa2: batch: report: {report} (2 failed or interrupted)" in said
    text = report.read_text()
    failed = text.split("\nfailed:\n")[1]
    assert "job 2 (v1): " in failed and "manifest" in failed
    assert f"log: {tmp_path / 'jobs.logs' / 'v1.log'}" in failed
    assert "job 3 (v2): not run: job 'v1', which it follows (after), did not succeed" in failed
    assert "job 1 (v0)" not in failed
    assert json.loads(json.dumps(first.to_json()))["report"] == str(report)

    shutil.rmtree(tmp_path / "p1" / PROJECT)  # repaired
    shutil.copytree(tp / "pack" / PROJECT, tmp_path / "p1" / PROJECT, symlinks=True)
    again = run_campaign(jobs, executor="serial", plugins=qa2_pm, retry_failed=True)
    assert {o.job.id: o.status for o in again.outcomes} == {"v1": "succeeded", "v2": "succeeded"}
    assert again.report is not None and again.report != report and "failed:" not in \
        again.report.read_text()
    last = run_campaign(jobs, executor="serial", plugins=qa2_pm, retry_failed=True)
    assert last.outcomes == [] and last.ok
    assert _ends(first.ledger) == {"v0": ["succeeded"], "v1": ["failed", "succeeded"],
                                   "v2": ["failed", "succeeded"]}


def test_status_reads_the_ledger_alone_and_skips_a_damaged_line(tp, tmp_path: Path, qa2_pm,
                                                                run_qa2) -> None:
    qa2_pm.register(SerialExecutorPlugin(), name="serial-ops2")
    jobs = _three(tp, tmp_path, broken=True)
    run_campaign(jobs, executor="serial", plugins=qa2_pm, only=["v0", "v1"])
    ledger = jobs.with_name("jobs.ledger.jsonl")
    with open(ledger, "ab") as fh:
        fh.write(b"\xe9 not utf-8\n")
    before = ledger.read_bytes()
    r = run_qa2("batch", jobs, "--status")
    assert r.exit_code == 0, r.stderr
    rows = r.stdout.splitlines()
    logs = tmp_path / "jobs.logs"
    assert rows[0].startswith("v0: succeeded 20") and rows[0].endswith(f"(log: {logs / 'v0.log'})")
    assert rows[1].startswith("v1: failed 20") and "manifest" in rows[1]
    assert rows[1].endswith(f"(log: {logs / 'v1.log'})")
    assert rows[2] == f"v2: never run (log: {logs / 'v2.log'})"
    damaged = len(before.splitlines())  # the last line
    assert f"qa2: warning: {ledger}:{damaged}: not UTF-8; line skipped" in r.stderr
    assert ledger.read_bytes() == before
    shutil.rmtree(tmp_path / "p2")  # a jobs file that no longer checks: the ledger still reads
    r = run_qa2("batch", jobs, "--status", "--json")
    assert r.exit_code == 0, r.stderr
    assert [(j["job"], j["state"]) for j in json.loads(r.stdout)["jobs"]] == [
        ("v0", "succeeded"), ("v1", "failed")]


# --------------------------------------------------------------------- Ctrl-C and SIGTERM


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_campaign_and_the_next_run_finishes_it(tp, tmp_path: Path, hook,
                                                                  monkeypatch, signum) -> None:
    packs = [_pack(tp, tmp_path / f"p{i}") for i in range(3)]
    jobs = tmp_path / "jobs.toml"
    jobs.write_text("".join(f'[[job]]\nname = "v{i}"\ncommand = "verify"\npackpath = "{p}"\n\n'
                            for i, p in enumerate(packs)))
    ledger = tmp_path / "jobs.ledger.jsonl"
    monkeypatch.setenv("QA2_TEST_HOLD_VERIFY", "1")
    hook["flag"].touch()  # every verify waits: the campaign is caught with a job running
    proc = subprocess.Popen([str(VENV_BIN / "qa2"), "batch", str(jobs), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for("a job's start record", lambda: ledger.exists() and any(
            r.get("state") == "started" for r in Ledger(ledger).records()), proc=proc)
        _wait_for("the job's verify", lambda: _lines(hook["events"], "verify"), proc=proc)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    hook["flag"].unlink()
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "resource_tracker" not in err, err
    assert f"qa2: batch: interrupted (signal {int(signum)})" in err
    assert any(x.split()[1:2] == ["interrupted"] for x in out.splitlines()[1:]), out
    assert "qa2: batch: report: " in err
    recs = Ledger(ledger).records()
    assert recs[-1]["state"] == "interrupted" and recs[-1]["signal"] == int(signum)
    assert not any(r.get("state") == "succeeded" for r in recs)
    (pid,) = {int(x[2]) for x in _lines(hook["events"], "verify")}  # the held job's process
    _wait_for("the interrupted job's process to end", lambda: _gone(pid))

    again = subprocess.run([str(VENV_BIN / "qa2"), "batch", str(jobs), "--workers", "2",
                            "--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr and "resource_tracker" not in again.stderr
    assert {j["job"]: j["status"] for j in json.loads(again.stdout)["jobs"]} == {
        "v0": "succeeded", "v1": "succeeded", "v2": "succeeded"}
    assert _ends(ledger) == {f"v{i}": ["succeeded"] for i in range(3)}


# ------------------------------------------------------------------- partial tars


def test_a_partial_tar_nobody_holds_is_removed_one_held_is_not(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    name = f"{PROJECT}_001_of_001.tar"
    fd, held = archive._partial(out / name)
    try:
        (out / f"{name}.left1.partial").write_bytes(b"x")  # a killed run's, nobody holds it
        (out / "other_001_of_001.tar.left2.partial").write_bytes(b"x")  # another name's
        assert archive.remove_partials(out, name) == [out / f"{name}.left1.partial"]
        assert held.exists()
        assert (out / "other_001_of_001.tar.left2.partial").exists()
    finally:
        os.close(fd)
    assert archive.remove_partials(out, name) == [held]


def test_a_tar_killed_mid_write_leaves_a_partial_the_next_tar_removes(tp, tmp_path: Path, hook,
                                                                       monkeypatch) -> None:
    pack = _pack(tp, tmp_path / "p")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("QA2_TEST_HOLD_TAR", "1")
    hook["flag"].touch()
    proc = subprocess.Popen([str(VENV_BIN / "qa2"), "tar", str(pack), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for("the tar's first write", lambda: _lines(hook["events"], "tarwrite"), proc=proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    (left,) = out.glob("*.partial")
    assert left.name.startswith(f"{PROJECT}_001_of_001.tar.")
    hook["flag"].unlink()
    r = subprocess.run([str(VENV_BIN / "qa2"), "tar", str(pack), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{left}: removed the partial tar of an interrupted run" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        f"{PROJECT}_001_of_001.tar{s}" for s in ("", ".md5sum", ".sha256")]


def test_a_batch_tar_job_killed_leaves_no_partial(tp, tmp_path: Path, hook, monkeypatch,
                                                  qa2_pm) -> None:
    qa2_pm.register(SerialExecutorPlugin(), name="serial-ops2")
    pack = _pack(tp, tmp_path / "p")
    out = tmp_path / "out"
    out.mkdir()
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(f'[[job]]\nname = "t"\ncommand = "tar"\npackpath = "{pack}"\nout = "{out}"\n')
    monkeypatch.setenv("QA2_TEST_HOLD_TAR", "1")
    hook["flag"].touch()

    import threading

    def kill_the_job() -> None:
        (line,) = _wait_for("the tar job's first write", lambda: _lines(hook["events"], "tarwrite"))
        assert list(out.glob("*.partial"))
        os.kill(int(line[1]), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_job, daemon=True)
    killer.start()
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm)
    killer.join(10)
    (o,) = result.outcomes
    assert o.status == "failed" and "killed by signal 9" in o.errors[0]
    assert any("removed the partial tar of the failed job" in w for w in o.warnings)
    assert list(out.iterdir()) == []


# -------------------------------------------------------- a job whose worker is gone


WORKER = """\
import sys
from qa2core.batch import Task
from qa2core.batch.worker import run_task
run_task(Task.from_json(sys.argv[1]), lambda event: None)
"""


@pytest.mark.parametrize("hold", ["jobstart", "package"])
def test_a_job_whose_worker_died_kills_itself_before_it_writes(tp, tmp_path: Path, hook,
                                                               monkeypatch, hold) -> None:
    """``jobstart``: the worker dies while the job's process starts (before qa2 runs in it: the
    check of its parent at start); ``package``: while it runs, before the PACKPATH lock (the
    parent-death signal)."""
    (tmp_path / "out").mkdir()
    pack = tmp_path / "out" / PROJECT
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(f'[[job]]\nname = "pk"\ncommand = "package"\norigpath = "{tp / "src" / PROJECT}"'
                    f'\npackpath = "{pack}"\nmode = "copy"\n')
    campaign = jobsfile.load(jobs)
    campaign.logs.mkdir()
    task: Task = _task(campaign.jobs[0], campaign, "r1")
    monkeypatch.setenv({"jobstart": "QA2_TEST_HOLD_JOBSTART",
                        "package": "QA2_TEST_HOLD_PACKAGE"}[hold], "1")
    hook["flag"].touch()
    worker = subprocess.Popen([sys.executable, "-c", WORKER, task.to_json()])
    try:
        (line,) = _wait_for("the job's process", lambda: _lines(hook["events"], hold),
                            proc=worker)
        job_pid, parent = int(line[1]), int(line[2])
        assert parent == worker.pid
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        hook["flag"].unlink()  # let it go on: it must end on its own, having written nothing
        _wait_for("the orphaned job's process to end", lambda: _gone(job_pid), timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no PACKPATH, no .qa2
    assert "result" not in (campaign.logs / "pk.log").read_text()


# ------------------------------------------------------------ readers share a PACKPATH


def test_the_shared_lock_admits_readers_together_and_never_beside_a_writer(tp, tmp_path: Path
                                                                            ) -> None:
    pack = _pack(tp, tmp_path / "p")
    with PackLock(pack, "tar", shared=True), PackLock(pack, "verify", shared=True), \
            pytest.raises(Qa2Error, match=r"holds the lock \(tar pid \d+@.*, verify pid"):
        PackLock(pack, "package").__enter__()
    with PackLock(pack, "package"), pytest.raises(Qa2Error, match=r"\(package pid"):
        PackLock(pack, "tar", shared=True).__enter__()
    with PackLock(pack, "package"):  # the last reader out left the lock file empty
        pass
    assert paths.lock_file(pack).read_text() == ""


def test_a_tar_that_must_recover_a_swap_needs_the_lock_alone(tp, tmp_path: Path) -> None:
    pack = _pack(tp, tmp_path / "p")
    out = tmp_path / "out"
    out.mkdir()
    scratch = paths.partial_dir(pack)
    scratch.mkdir(parents=True)
    (scratch / "leftover").write_text("x")  # an interrupted run's scratch (no swap marker)
    with PackLock(pack, "tar", shared=True), pytest.raises(  # another reader holds it
            Qa2Error, match="an interrupted run left a swap to finish, which needs the lock "
            "alone, and another qa2 run reads the package"):
        archive.make_tars(pack, out_dir=out)
    assert scratch.exists() and list(out.iterdir()) == []
    report = archive.make_tars(pack, out_dir=out)  # alone: it recovers, then archives
    assert not scratch.exists() and len(report.tars) == 1
    assert any("removed the leftovers of an interrupted run" in w for w in report.warnings)


def test_two_tars_of_one_package_run_at_once(tp, tmp_path: Path, hook, monkeypatch) -> None:
    """Each tar, holding its (shared) lock, waits until the other holds it too."""
    pack = _pack(tp, tmp_path / "p")
    outs = [tmp_path / "o1", tmp_path / "o2"]
    for o in outs:
        o.mkdir()
    monkeypatch.setenv("QA2_TEST_TAR_BARRIER", "2")
    procs = [subprocess.Popen([str(VENV_BIN / "qa2"), "tar", str(pack), "--out", str(o)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for o in outs]
    done = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _o, e in done]
    assert len(_lines(hook["events"], "tarin")) == 2
    for o in outs:
        assert [p.name for p in o.glob("*.tar")] == [f"{PROJECT}_001_of_001.tar"]


def test_two_tar_jobs_of_one_packpath_in_one_campaign(tp, tmp_path: Path, hook, monkeypatch,
                                                      run_qa2) -> None:
    """On a LocalCluster of two workers: both tar jobs hold the PACKPATH at once."""
    pack = _pack(tp, tmp_path / "p")
    for o in ("o1", "o2"):
        (tmp_path / o).mkdir()
    jobs = tmp_path / "jobs.toml"
    jobs.write_text("".join(f'[[job]]\nname = "t{i}"\ncommand = "tar"\npackpath = "{pack}"\n'
                            f'out = "{tmp_path / o}"\n\n' for i, o in enumerate(("o1", "o2"))))
    monkeypatch.setenv("QA2_TEST_TAR_BARRIER", "2")
    r = run_qa2("batch", jobs, "--workers", "2", "--json")
    assert r.exit_code == 0, r.stderr
    assert {j["job"]: j["status"] for j in json.loads(r.stdout)["jobs"]} == {
        "t0": "succeeded", "t1": "succeeded"}
    assert len(_lines(hook["events"], "tarin")) == 2
