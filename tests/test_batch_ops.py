"""Issue 19: ``qa2 batch`` in operation. A finished job never runs twice when a worker dies
(LocalCluster and an external ``dask scheduler``/``dask worker``); a wrong ``--scheduler`` is a
usage error within seconds; a damaged ledger never stops a run; stage -> package -> tar -> verify
in one jobs file (``after``). Only events and their order are checked, never a duration (the
15 s bound on a wrong scheduler is the probe's own timeout; make bench times it)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="qa2 batch needs the batch extra: "
                    "pip install 'qa2core[batch]' (make bootstrap installs it)")

from qa2core import engine
from qa2core.batch import ExecutorSettings
from qa2core.batch import job as batch_job
from qa2core.batch import jobs as jobsfile
from qa2core.batch.ledger import Ledger
from qa2core.batch.run import run_campaign
from qa2core.checks.verify import verify
from qa2core.testing import SerialExecutorPlugin, sampledata

VENV_BIN = Path(sys.executable).parent
# Loaded by every worker and job process (PYTHONPATH): each verify notes "start NAME PPID" and
# "end NAME" in the events file (NAME: the package's directory name), and a package named in
# QA2_TEST_HOLD waits while the flag file exists, so that its worker can be killed mid-job.
EVENTS_HOOK = """\
import os
events = os.environ.get("QA2_TEST_EVENTS")
if events:
    import time
    import qa2core.checks.verify as _v
    _verify = _v.verify
    def _note(line):
        fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (line + "\\n").encode())
        os.close(fd)
    def verify(pack, *args, **kwargs):
        name = os.path.basename(os.path.dirname(str(pack)))
        _note(f"start {name} {os.getppid()}")
        if name in os.environ.get("QA2_TEST_HOLD", "").split(","):
            while os.path.exists(os.environ["QA2_TEST_FLAG"]):
                time.sleep(0.05)
        try:
            return _verify(pack, *args, **kwargs)
        finally:
            _note(f"end {name}")
    _v.verify = verify
"""


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight small real packages (fake mode: verify is quick), each in a directory of its own."""
    base = tmp_path_factory.mktemp("packs")
    sampledata.build_staged_tp_tree(base / "src")
    out = []
    for i in range(8):
        (base / f"p{i}").mkdir()
        pack = base / f"p{i}" / sampledata.TP_PROJECT
        engine.package(base / "src" / sampledata.TP_PROJECT, pack, mode="copy")
        out.append(pack)
    return out


def _verify_jobs(path: Path, packs: list[Path]) -> Path:
    path.write_text("".join(f'[[job]]\nname = "v{i}"\ncommand = "verify"\npackpath = "{p}"\n\n'
                            for i, p in enumerate(packs)))
    return path


def _hook_env(monkeypatch, tmp_path: Path, hold: str) -> tuple[Path, Path]:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(EVENTS_HOOK)
    events, flag = tmp_path / "events.txt", tmp_path / "hold.flag"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook),
                                                                    os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("QA2_TEST_EVENTS", str(events))
    monkeypatch.setenv("QA2_TEST_HOLD", hold)
    monkeypatch.setenv("QA2_TEST_FLAG", str(flag))
    monkeypatch.setenv("DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT", "6s")
    monkeypatch.setenv("DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL", "2s")
    flag.touch()
    return events, flag


def _kill_a_busy_worker(events: Path, flag: Path, runner: threading.Thread, held: str) -> int:
    """When six jobs ended and the held job started: kill -9 the worker running it."""
    deadline = time.monotonic() + 90
    while True:
        seen = events.read_text().splitlines() if events.exists() else []
        starts = [line.split() for line in seen if line.startswith(f"start {held} ")]
        if starts and sum(line.startswith("end ") for line in seen) >= 6:
            break
        assert runner.is_alive() and time.monotonic() < deadline, seen
        time.sleep(0.05)
    worker = int(starts[0][2])  # the job process's parent: the worker process
    os.kill(worker, signal.SIGKILL)
    flag.unlink()
    return worker


def _assert_each_finished_job_ran_once(events: Path, result, held: str) -> None:
    lines = events.read_text().splitlines()
    status = {o.job.id: o.status for o in result.outcomes}
    assert set(status) == {f"v{i}" for i in range(8)}
    assert all(s in ("succeeded", "failed") for s in status.values()), status
    for name in {line.split()[1] for line in lines}:
        runs = sum(line.startswith(f"start {name} ") for line in lines)
        if name != held:  # the killed one ran at most twice (its retry)
            assert runs == 1, (name, lines)
    ledger = [json.loads(x) for x in result.ledger.read_text().splitlines()]
    for job in status:
        ends = [r for r in ledger if r.get("job") == job and r["state"] in ("succeeded", "failed")]
        assert len(ends) == 1, (job, ends)


def _campaign_in_thread(jobs: Path, settings: ExecutorSettings) -> tuple[threading.Thread, dict]:
    done: dict = {}
    runner = threading.Thread(target=lambda: done.setdefault("result", run_campaign(
        jobs, settings=settings)), daemon=True)
    runner.start()
    return runner, done


def test_a_killed_worker_never_makes_a_finished_job_run_again(packages, tmp_path: Path,
                                                               monkeypatch) -> None:
    held = packages[7].parent.name
    events, flag = _hook_env(monkeypatch, tmp_path, held)
    jobs = _verify_jobs(tmp_path / "jobs.toml", packages)
    runner, done = _campaign_in_thread(jobs, ExecutorSettings(None, 2, 8))
    try:
        _kill_a_busy_worker(events, flag, runner, held)
    finally:
        flag.unlink(missing_ok=True)
        runner.join(120)
    assert not runner.is_alive()
    _assert_each_finished_job_ran_once(events, done["result"], held)


def _stop(procs: list[subprocess.Popen]) -> None:
    """End the scheduler and worker processes a test started, the last started first."""
    for p in reversed(procs):
        p.terminate()
    for p in reversed(procs):
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_external_scheduler_and_a_killed_worker(packages, tmp_path: Path, monkeypatch) -> None:
    if not (VENV_BIN / "dask").exists() and not shutil.which("dask"):
        pytest.skip("no dask command")
    dask = str(VENV_BIN / "dask") if (VENV_BIN / "dask").exists() else "dask"
    held = packages[7].parent.name
    events, flag = _hook_env(monkeypatch, tmp_path, held)
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                               address.rsplit(":", 1)[1], "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "2", "--nthreads",
                                       "1", "--no-dashboard", "--memory-limit", "0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        jobs = _verify_jobs(tmp_path / "jobs.toml", packages)
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        runner, done = _campaign_in_thread(jobs, ExecutorSettings(address, 2, 8))
        try:
            _kill_a_busy_worker(events, flag, runner, held)
        finally:
            flag.unlink(missing_ok=True)
            runner.join(120)
        assert not runner.is_alive()
        _assert_each_finished_job_ran_once(events, done["result"], held)
    finally:
        _stop(procs)


def test_the_job_process_refuses_to_run_a_job_done_in_this_run(packages, tmp_path: Path,
                                                               capsys) -> None:
    args = {"packpath": str(packages[0]), "fast": False, "complete": False,
            "for_ingestion": False, "style": "", "jobs": 1}
    spec = {"command": "verify", "args": args, "job": "v0", "run": "r1",
            "ledger": str(tmp_path / "none.jsonl"), "done": str(tmp_path / "v0.done")}
    assert batch_job.main([json.dumps(spec)]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])["result"]
    assert first["status"] == "succeeded" and "again" not in first
    assert batch_job.main([json.dumps(spec)]) == 0  # Dask started it again: nothing done
    again = json.loads(capsys.readouterr().out.splitlines()[-1])["result"]
    assert again["again"] is True and again["status"] == "succeeded"
    assert batch_job.already_done({**spec, "run": "r2"}) is None  # a new run checks anew


class _Http(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("kind", ["nonsense", "closed", "http", "http-url"])
def test_a_wrong_scheduler_is_a_usage_error_within_15_s(run_qa2, packages, tmp_path: Path,
                                                        kind: str) -> None:
    jobs = _verify_jobs(tmp_path / "jobs.toml", packages[:1])
    server = None
    if kind.startswith("http"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Http)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        address = f"http://127.0.0.1:{port}" if kind == "http-url" else f"tcp://127.0.0.1:{port}"
    else:
        address = "nonsense" if kind == "nonsense" else f"tcp://127.0.0.1:{_free_port()}"
    try:
        r = run_qa2("batch", jobs, "--scheduler", address)
    finally:
        if server is not None:
            server.shutdown()
    assert r.exit_code == 2, r.stderr
    assert f"--scheduler {address}:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "jobs.ledger.jsonl").exists()
    # "within 15 s" is the probe's own bound (asyncio.wait_for); its wall time is make bench's
    from qa2core.batch import probe

    assert probe.TIMEOUT_S <= 15


def test_a_damaged_ledger_is_read_around(tmp_path: Path, packages, qa2_pm) -> None:
    qa2_pm.register(SerialExecutorPlugin(), name="serial-ops")
    jobs = _verify_jobs(tmp_path / "jobs.toml", packages[:2])
    ledger = tmp_path / "jobs.ledger.jsonl"
    ledger.write_bytes(b'{"v": 1, "run": "x", "state": "campaign"}\n'
                       b'\xe9\xff not utf-8\n'
                       b'{"v": 1, "run": "x", "state": "succeeded", "spec": "s"}\n'
                       b'{"v": 1, "run": "x", "job": ["v0"], "state": "succeeded"}\n'
                       b'{"v": 1, "run": "x", "job": "v1", "state": "succ')  # cut short
    said: list[str] = []
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm, say=said.append)
    assert result.ok and [o.status for o in result.outcomes] == ["succeeded", "succeeded"]
    warnings = [line for line in said if line.startswith("qa2: warning:")]
    assert len(warnings) == 4 and all("line skipped" in w for w in warnings), warnings
    lines = ledger.read_bytes().split(b"\n")
    assert lines[4].endswith(b'"state": "succ') and json.loads(lines[5])["state"] == "campaign"
    again = run_campaign(jobs, executor="serial", plugins=qa2_pm, say=said.append)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]
    assert len(Ledger(ledger).last_success()) == 2


def test_stage_package_tar_and_verify_in_one_jobs_file(run_qa2, tmp_path: Path) -> None:
    run = sampledata.build_auxproducts_run(tmp_path / "pipe")
    for f in run.root.rglob("*"):  # an empty file is a fake's placeholder: tar refuses those
        if f.is_file() and f.stat().st_size == 0:
            f.write_text("# sample\n")
    piscript = tmp_path / "qa2master" / "scriptForPI.py"
    piscript.parent.mkdir()
    piscript.write_text(sampledata.pi_script_text())
    for d in ("staged", "pack", "tars"):
        (tmp_path / d).mkdir()
    project = sampledata.AUX_PROJECT
    jobs = tmp_path / "pipeline.toml"
    jobs.write_text(f"""
[defaults]
mode = "copy"
piscript = "{piscript}"

[[job]]
name = "tar"
command = "tar"
packpath = "pack/{project}"
out = "tars"
after = ["package"]

[[job]]
name = "check"
command = "verify"
packpath = "pack/{project}"
after = ["package"]

[[job]]
name = "stage"
command = "stage"
pipeline_root = "{run.root}"
staged_root = "staged/{project}"

[[job]]
name = "package"
command = "package"
origpath = "staged/{project}"
packpath = "pack/{project}"
style = "cycle4-pipe"
after = ["stage"]
""")
    r = run_qa2("batch", jobs, "--workers", "2", "--json")
    report = {j["job"]: j for j in json.loads(r.stdout)["jobs"]}
    status = {k: v["status"] for k, v in report.items()}
    assert any(n.endswith(".tar") for n in os.listdir(tmp_path / "tars")), report["tar"]
    assert status == dict.fromkeys(("tar", "check", "stage", "package"), "succeeded"), r.stderr
    assert verify(tmp_path / "pack" / project).ok
    ledger = [json.loads(x) for x in (tmp_path / "pipeline.ledger.jsonl").read_text().splitlines()]
    ended = [rec["job"] for rec in ledger if rec.get("state") in ("succeeded", "failed")]
    started = [rec["job"] for rec in ledger if rec.get("state") == "started"]
    assert ended.index("stage") < started.index("package")
    assert ended.index("package") < min(started.index("tar"), started.index("check"))


def _raw(tmp_path: Path, body: str) -> list[str]:
    (tmp_path / "jobs.toml").write_text(body)
    with pytest.raises(jobsfile.JobsFileError) as err:
        jobsfile.load(tmp_path / "jobs.toml")
    return list(err.value.lines)


def test_after_is_checked_up_front(tmp_path: Path, packages) -> None:
    pack = packages[0]
    lines = _raw(tmp_path, f"""
[[job]]
name = "a"
command = "verify"
packpath = "{pack}"
after = ["b"]
[[job]]
name = "b"
command = "verify"
packpath = "{pack}"
after = ["a", "nobody"]
[[job]]
name = "t"
command = "tar"
packpath = "{pack}"
out = "{pack}/sub"
""")
    text = "\n".join(lines)
    assert "job 2 (b): key 'after': no job named 'nobody'" in text
    assert "a cycle" in text
    assert "job 3 (t): key 'out'" in text
    # readers share a PACKPATH; a writer and a reader of it only in order
    (tmp_path / "red").mkdir()
    (tmp_path / "out").mkdir()
    lines = _raw(tmp_path, f"""
[[job]]
name = "w"
command = "package"
origpath = "red"
packpath = "{packages[1]}"
[[job]]
name = "r"
command = "verify"
packpath = "{pack}"
[[job]]
name = "r2"
command = "verify"
packpath = "{pack}"
[[job]]
name = "t"
command = "tar"
packpath = "{packages[1]}"
out = "out"
""")
    assert len(lines) == 1, lines  # r and r2 share a PACKPATH; t reads w's without following it
    assert any("job 1 (w) and job 4 (t)" in x and "after" in x for x in lines), lines


def test_a_jobs_file_inside_a_packpath_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src" / "red").mkdir(parents=True)
    pack = tmp_path / "deliv" / "2015.1.00123.S"
    pack.mkdir(parents=True)
    (pack / "jobs.toml").write_text(f"""
[[job]]
command = "package"
origpath = "{tmp_path / 'src' / 'red'}"
packpath = "."
""")
    with pytest.raises(jobsfile.JobsFileError) as err:
        jobsfile.load(pack / "jobs.toml")
    assert any("the jobs file lies inside its PACKPATH" in x for x in err.value.lines), err.value.lines


def test_a_scheduler_with_no_workers_is_said_once_then_at_intervals(packages, tmp_path: Path) -> None:
    """No workers: one notice after the stated wait, then one per interval, and the jobs run
    as soon as a worker joins (issue 19: never silent)."""
    dask = str(VENV_BIN / "dask") if (VENV_BIN / "dask").exists() else shutil.which("dask")
    assert dask, "the batch extra installs the dask command"
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                               address.rsplit(":", 1)[1], "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    said: list[str] = []
    notices = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        if sum("has no workers" in s for s in said) >= 2:
            notices.set()

    try:
        jobs = _verify_jobs(tmp_path / "jobs.toml", packages[:2])
        settings = ExecutorSettings(address, 1, 8, no_workers_wait=0.5, no_workers_every=1.0)
        done: dict = {}
        runner = threading.Thread(target=lambda: done.setdefault("result", run_campaign(
            jobs, settings=settings, say=say)), daemon=True)
        runner.start()
        assert notices.wait(60), said  # said once, then again: never a silent wait
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads",
                                       "1", "--no-dashboard", "--memory-limit", "0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        runner.join(120)
        assert not runner.is_alive()
        assert done["result"].ok, done["result"]
        first = [s for s in said if "has no workers" in s]
        assert len(first) >= 2 and address in first[0]
    finally:
        _stop(procs)


def test_the_progress_line_counts_what_runs_and_never_goes_back(tmp_path: Path, packages,
                                                                  qa2_pm) -> None:
    """One job at a time (the serial executor): the line never says more than one running,
    and its bytes and done count never go down."""
    import re

    qa2_pm.register(SerialExecutorPlugin(), name="serial-progress")
    jobs = _verify_jobs(tmp_path / "jobs.toml", packages[:4])
    said: list[str] = []
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm, say=said.append)
    assert result.ok
    lines = [re.search(r"(\d+)/(\d+) done \((\d+) failed\), (\d+) running, (.+) written", s)
             for s in said]
    shown = [(int(m[1]), int(m[4]), m[5]) for m in lines if m]
    assert shown, said
    assert all(running <= 1 for _done, running, _bytes in shown), shown
    dones = [d for d, _r, _b in shown]
    assert dones == sorted(dones)
    scale = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    written = [float(b.split()[0]) * scale[b.split()[1]] for _d, _r, b in shown]
    assert written == sorted(written), shown
