"""``qa2 batch`` on a real Dask LocalCluster (no mocks): four sample jobs — a manual
interferometric reduction, a Total Power package, a pipeline stage and a broken input — then a
resumed run, a worker killed with SIGKILL in the middle of a job, and jobs files refused whole.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="qa2 batch needs the batch extra: "
                    "pip install 'qa2core[batch]' (make bootstrap installs it)")

from qa2core.batch import ExecutorSettings, Task
from qa2core.batch.run import run_campaign
from qa2core.batch.worker import run_task
from qa2core.checks.verify import verify
from qa2core.planning import paths
from qa2core.testing import SLOW_COPY_HOOK, SerialExecutorPlugin, sampledata

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"


def _jobs_toml(sample) -> str:
    return f"""\
[defaults]
mode = "copy"
style = "cycle3-nopipe"

[[job]]
name = "manual"
command = "package"
origpath = "{sample.root}"
packpath = "out/manual/{sample.project}"
readme = "{sample.readme_header}"
piscript = "{sample.piscript.parent}"

[[job]]
name = "tp"
command = "package"
origpath = "tp/{sampledata.TP_PROJECT}"
packpath = "out/tp/{sampledata.TP_PROJECT}"
style = ""

[[job]]
name = "pipeline"
command = "stage"
pipeline_root = "{PIPE_ROOT}"
staged_root = "out/stage/{sampledata.AUX_PROJECT}"
piscript = "{sample.piscript}"

[[job]]
name = "broken"
command = "package"
origpath = "broken"
packpath = "out/broken/2019.1.00001.S"
"""


PIPE_ROOT = "pipe/2017.1.00271.S_2017_11_02T10_20_30.123"


@pytest.fixture(scope="module")
def campaign(manual_sample, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("campaign")
    sampledata.build_staged_tp_tree(base / "tp")
    run = sampledata.build_auxproducts_run(base / "pipe")
    assert run.root == base / PIPE_ROOT
    (base / "broken").mkdir()
    (base / "broken" / "notes.txt").write_text("no plugin claims this\n")
    for d in ("manual", "tp", "stage", "broken"):
        (base / "out" / d).mkdir(parents=True)
    (base / "jobs.toml").write_text(_jobs_toml(manual_sample))
    return base


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A LocalCluster of our own (2 worker processes) whose processes load SLOW_COPY_HOOK."""
    import dask
    from distributed import Client, LocalCluster

    from qa2core.batch.dask_executor import LOCAL_CONFIG

    hook = tmp_path_factory.mktemp("hook")
    (hook / "sitecustomize.py").write_text(SLOW_COPY_HOOK)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
        mp.setenv("QA2_TEST_SLOW_FLAG", str(hook / "slow"))
        with dask.config.set(LOCAL_CONFIG), LocalCluster(
                n_workers=2, processes=True, threads_per_worker=1, memory_limit=0,
                dashboard_address=":0") as c, Client(c) as client:
            yield c, client, hook / "slow"


def _ledger(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jobs_file_is_checked_whole_before_anything_runs(run_qa2, tmp_path: Path) -> None:
    src = tmp_path / "red"
    src.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "jobs.toml").write_text("""
[defaults]
mode = "copy"
[[job]]
name = "a"
command = "package"
origpath = "red"
packpath = "out/2015.1.00123.S"
[[job]]
name = "b"
command = "package"
origpath = "red"
packpath = "out/2015.1.00123.S/"
[[job]]
command = "package"
origpath = "missing"
packpath = "red/inside"
mdoe = "copy"
style = "cycle99"
""")
    r = run_qa2("batch", tmp_path / "jobs.toml")
    assert r.exit_code == 2, r.stderr
    lines = r.stderr.splitlines()
    assert any("job 1 (a) and job 2 (b): key 'packpath': both use PACKPATH" in line
               for line in lines), r.stderr
    assert any("job 3: key 'mdoe': unknown for package" in line for line in lines), r.stderr
    assert any("job 3: key 'style': unknown style 'cycle99'" in line for line in lines), r.stderr
    assert any("job 3: key 'origpath':" in line and "does not exist" in line for line in lines)
    assert all(line.startswith("qa2: error: jobs.toml: ") for line in lines), r.stderr
    assert not (tmp_path / "jobs.ledger.jsonl").exists()  # nothing ran, nothing recorded
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_campaign_runs_fails_alone_and_resumes(run_qa2, campaign: Path, cluster) -> None:
    t0 = time.monotonic()
    r = run_qa2("batch", campaign / "jobs.toml", "--workers", "2", "--json")  # its own LocalCluster
    assert r.exit_code == 1, r.stderr
    report = json.loads(r.stdout)
    status = {j["job"]: j for j in report["jobs"]}
    assert {k: v["status"] for k, v in status.items()} == {
        "manual": "succeeded", "tp": "succeeded", "pipeline": "succeeded", "broken": "failed"}
    assert "no plugin claims this input" in status["broken"]["errors"][0]
    assert "no plugin claims this input" in Path(status["broken"]["log"]).read_text()
    for name in ("manual", "tp", "pipeline"):
        job = status[name]
        assert job["bytes"] > 0 and job["attempts"] == 1
        assert verify(job["packpath"]).ok, name
        assert (Path(job["packpath"]) / MEMBER / "README").is_file()
        log = Path(job["log"])
        assert log == campaign / "jobs.logs" / f"{name}.log" and "verify: OK" in log.read_text()
    assert "qa2: batch: 4/4 done (1 failed), 0 running" in r.stderr
    first = time.monotonic() - t0

    scheduler = cluster[0].scheduler_address
    r = run_qa2("batch", campaign / "jobs.toml", "--scheduler", scheduler, "--json")
    assert r.exit_code == 1, r.stderr
    again = {j["job"]: j["status"] for j in json.loads(r.stdout)["jobs"]}
    assert again == {"manual": "skipped", "tp": "skipped", "pipeline": "skipped", "broken": "failed"}
    assert "job 1 (manual): skipped: up to date" in r.stderr

    # A changed source is packaged again; a plain-text summary without --json.
    (campaign / "tp" / sampledata.TP_PROJECT / MEMBER / "log" / "notes.log").write_text("new\n")
    r = run_qa2("batch", campaign / "jobs.toml", "--scheduler", scheduler)
    assert r.exit_code == 1
    rows = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines()[1:]}
    assert rows == {"manual": "skipped", "tp": "succeeded", "pipeline": "skipped", "broken": "failed"}
    states = [(rec.get("job"), rec["state"]) for rec in _ledger(campaign / "jobs.ledger.jsonl")]
    assert states.count(("tp", "succeeded")) == 2 and states.count(("manual", "skipped")) == 2
    print(f"first campaign {first:.1f} s")


def test_worker_killed_mid_job_leaves_no_half_package(campaign: Path, cluster) -> None:
    c, client, slow = cluster
    (campaign / "out" / "killed").mkdir()
    jobs = campaign / "killed.toml"
    jobs.write_text(f"""
[[job]]
name = "victim"
command = "package"
mode = "copy"
origpath = "tp/{sampledata.TP_PROJECT}"
packpath = "out/killed/{sampledata.TP_PROJECT}"
""")
    pack = campaign / "out" / "killed" / sampledata.TP_PROJECT
    slow.touch()
    done: dict = {}
    runner = threading.Thread(target=lambda: done.setdefault("result", run_campaign(
        jobs, settings=ExecutorSettings(c.scheduler_address, 2, 4))))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not paths.partial_dir(pack).exists():  # the job is writing, held by SLOW_COPY_HOOK
            assert time.monotonic() < deadline and runner.is_alive(), "the job never started writing"
            time.sleep(0.05)
        busy = [addr for addr, keys in client.processing().items() if keys]
        assert len(busy) == 1
        pid = client.run(os.getpid, workers=busy)[busy[0]]
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    finally:
        slow.unlink()
        runner.join(60)
    assert not runner.is_alive()
    (outcome,) = done["result"].outcomes
    assert outcome.status in ("succeeded", "failed")  # never lost
    records = [r for r in _ledger(campaign / "killed.ledger.jsonl") if r.get("job") == "victim"]
    assert records[-1]["state"] == outcome.status
    assert not paths.partial_dir(pack).exists()
    if outcome.status == "succeeded":
        assert outcome.attempts == 2 and [r["attempt"] for r in records if r["state"] == "started"] == [1, 2]
        assert verify(pack).ok
        assert "removed the leftovers of an interrupted run" in Path(outcome.log).read_text()
    else:  # nothing half-written stays
        assert not (pack / MEMBER).exists()


def test_a_third_attempt_is_refused(tmp_path: Path) -> None:
    """A job whose worker died twice in one run is reported failed, without running again."""
    attempts = tmp_path / "x.attempts"
    attempts.write_text(json.dumps({"run": "r1", "count": 2}))
    task = Task("x", 1, "verify", "{}", str(tmp_path / "x.log"), str(attempts), "", "/", "r1")
    result = run_task(task, lambda event: None)
    assert result["status"] == "failed" and "interrupted 2 times" in result["errors"][0]
    assert not (tmp_path / "x.log").exists()


def test_a_plugin_executor_runs_the_jobs(campaign: Path, qa2_pm) -> None:
    qa2_pm.register(SerialExecutorPlugin(), name="serial-site")
    (campaign / "out" / "serial").mkdir()
    jobs = campaign / "serial.toml"
    jobs.write_text(f"""
[[job]]
command = "package"
mode = "copy"
origpath = "tp/{sampledata.TP_PROJECT}"
packpath = "out/serial/{sampledata.TP_PROJECT}"
""")
    events: list[str] = []
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm, say=events.append)
    assert result.ok and [o.status for o in result.outcomes] == ["succeeded"]
    assert any("started (attempt 1" in e for e in events)
    log = Path(result.outcomes[0].log)  # an unnamed job: its id made a file name, kept unique
    assert log.parent == campaign / "serial.logs" and log.name.startswith("package_out_serial_")


def test_without_dask_says_how_to_install(run_qa2, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("qa2core.batch.run.have_distributed", lambda: False)
    r = run_qa2("batch", tmp_path / "jobs.toml")
    assert r.exit_code == 1
    assert r.stderr.strip() == ("qa2: error: qa2 batch needs Dask: pip install 'qa2core[batch]' "
                                "(dask[distributed])")
