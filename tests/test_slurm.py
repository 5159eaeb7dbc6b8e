"""``qa2 batch --cluster slurm`` on a real single-node SLURM (Debian's slurmctld, slurmd, munge;
:mod:`qa2core.testing.slurm` starts them as root for this session and stops them at its end).

A campaign of small manual reductions runs with its workers as SLURM jobs (dask-jobqueue's
SLURMCluster, with the kwargs docs/batch.md's recipe shows), and the SLURM job of a worker in
the middle of a job is cancelled with ``scancel``: the campaign still finishes, each job
succeeds exactly once. Run as root with the packages installed (``make bootstrap``); a root
run without them fails rather than skip, so CI cannot pass without SLURM.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="qa2 batch needs the batch extra (make bootstrap)")

from qa2core.batch import slurm as qslurm
from qa2core.checks.verify import verify
from qa2core.planning import paths
from qa2core.testing import SLOW_COPY_HOOK, write_tree
from qa2core.testing import slurm as testslurm

ROOT = Path(__file__).resolve().parents[1]
QA2 = Path(sys.executable).with_name("qa2")
MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
PROJECT = "2015.1.00123.S"
MANUAL = {  # tests/test_cli.py's manual reduction, with a few more bytes to copy
    "Calibration_X2/uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "Imaging/scriptForImaging.py": "# imaging\n",
    "Imaging/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "Imaging/target.pb.fits": bytes(2880),
    "casa-20160101-000000.log": "log\n",
}
HEADER = (b"Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 3\n"
          b"Project code: 2015.1.00123.S\nComments from Reducer: none\n#####\n")
PISCRIPT = "# $Id: scriptForPI.py,v 1.23 2017/10/17 dpetry Exp $\nprint('PI')\n"
JOBS = ("red1", "red2", "red3")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0:
        pytest.skip("a single-node SLURM is started as root (CI and make test run as root)")
    why = testslurm.missing()
    if why:
        pytest.fail(f"SLURM cannot start: {why}", pytrace=False)
    root = tmp_path_factory.mktemp("slurm")
    try:
        with testslurm.single_node_slurm(root) as cluster:
            yield cluster
    except testslurm.SlurmUnavailable as exc:
        pytest.fail(f"SLURM did not start:\n{exc}", pytrace=False)
    assert all(proc.poll() is not None for proc in cluster.procs.values())  # no daemon left
    assert not testslurm.job_process_groups(cluster)  # nor any process of a job


def _campaign(base: Path) -> Path:
    (base / "qa2master").mkdir(parents=True)
    (base / "qa2master" / "scriptForPI.py").write_text(PISCRIPT)
    (base / "README.header.txt").write_bytes(HEADER)
    jobs = ['[defaults]\nmode = "copy"\nstyle = "cycle3-nopipe"\nreadme = "README.header.txt"\n'
            'piscript = "qa2master"\n']
    for name in JOBS:
        write_tree(base / name, MANUAL)
        (base / "out" / name).mkdir(parents=True)
        jobs.append(f'[[job]]\nname = "{name}"\ncommand = "package"\norigpath = "{name}"\n'
                    f'packpath = "out/{name}/{PROJECT}"\n')
    (base / "jobs.toml").write_text("\n".join(jobs))
    return base / "jobs.toml"


def _ledger(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _slurm_job_of(pid: int) -> str:
    """The SLURM job a process runs in: the SLURM_JOB_ID of it or its nearest ancestor that has
    one (the Dask nanny's; the worker process it starts gets a clean environment)."""
    while pid > 1:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        job = [v.split(b"=", 1)[1].decode() for v in env if v.startswith(b"SLURM_JOB_ID=")]
        if job:
            return job[0]
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    raise AssertionError("the worker runs in no SLURM job")


def test_campaign_on_slurm_survives_a_cancelled_worker(slurm, tmp_path: Path) -> None:
    t0 = time.monotonic()
    campaign = tmp_path / "campaign"
    jobs = _campaign(campaign)
    ledger = jobs.with_name("jobs.ledger.jsonl")
    hook = tmp_path / "hook"
    hook.mkdir()
    # every worker and job process loads it: PYTHONPATH reaches them through sbatch, which
    # passes the submitting environment on
    (hook / "sitecustomize.py").write_text(SLOW_COPY_HOOK)
    flag = hook / "slow"
    flag.touch()
    env = {**slurm.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get(
        "PYTHONPATH")])), "QA2_TEST_SLOW_FLAG": str(flag),
        # the site's Dask config, as ~/.config/dask/jobqueue.yaml would give it
        "DASK_JOBQUEUE__SLURM__LOG_DIRECTORY": str(tmp_path / "slurm-logs"),
        "DASK_JOBQUEUE__SLURM__LOCAL_DIRECTORY": str(tmp_path / "dask-local")}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([str(QA2), "batch", str(jobs), "--cluster", "slurm", "--workers", "2",
                                 "--per-filesystem", "1", "--json"], env=env, stdout=fo, stderr=fe,
                                cwd=tmp_path)

    def why() -> str:
        return (f"stderr:\n{err.read_text(errors='replace')}\nsqueue: {slurm.jobs()}\n"
                f"worker logs:\n{_worker_logs(tmp_path / 'slurm-logs')}\n{slurm.logs(15)}")

    try:
        deadline = time.monotonic() + 60
        started = None
        while started is None:  # the first job's attempt 1, held in the middle of its copy
            assert proc.poll() is None and time.monotonic() < deadline, why()
            time.sleep(0.1)
            records = _ledger(ledger) if ledger.exists() else []
            started = next((r for r in records if r.get("state") == "started"), None)
            if started and not paths.partial_dir(campaign / "out" / started["job"] / PROJECT).exists():
                started = None  # not writing yet
        victim, job_id = started["job"], _slurm_job_of(started["pid"])
        assert slurm.jobs().get(job_id) == "RUNNING", why()
        t_cancel = time.monotonic()
        slurm.run("scancel", job_id)
        flag.unlink()  # the other jobs may copy now; the victim's retry too
        proc.wait(120)
        t_end = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, why()
    report = json.loads(out.read_text())
    assert {j["job"]: j["status"] for j in report["jobs"]} == dict.fromkeys(JOBS, "succeeded"), why()
    for job in report["jobs"]:
        assert verify(job["packpath"]).ok, job
        assert (Path(job["packpath"]) / MEMBER / "script" / "scriptForPI.py").read_text() == PISCRIPT

    records = [r for r in _ledger(ledger) if r.get("job")]
    for name in JOBS:  # exactly once: one success, no failure, for every job
        states = [r["state"] for r in records if r["job"] == name]
        assert states.count("succeeded") == 1 and "failed" not in states, (name, states, why())
    tries = [r["attempt"] for r in records if r["job"] == victim and r["state"] == "started"]
    assert tries == [1, 2], (victim, tries, why())  # the cancelled attempt, then one on a new worker
    final = next(r for r in records if r["job"] == victim and r["state"] == "succeeded")
    assert final["attempt"] == 2
    log = Path(final["result"]["log"]).read_text()
    assert log.count("=== qa2 batch") == 2 and "removed the leftovers of an interrupted run" in log, log
    deadline = time.monotonic() + 20  # the cluster cancelled its worker jobs on closing
    while slurm.jobs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slurm.jobs() == {}, why()
    stderr = err.read_text()
    assert "qa2: batch: SLURM cluster: scheduler tcp://" in stderr
    retry = next(r for r in records if r["job"] == victim and r.get("attempt") == 2)
    print(f"SLURM campaign: {t_end - t0:.1f} s in all, {t_end - t_cancel:.1f} s of it after scancel "
          f"(the retry started {retry['time']}); log: {log.splitlines()[:2]}")


def _worker_logs(directory: Path) -> str:
    if not directory.is_dir():
        return "(none)"
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted(directory.iterdir()))


def _recipe() -> dict:
    """The keyword arguments of the SLURMCluster(...) call in docs/batch.md's recipe."""
    text = (ROOT / "docs" / "batch.md").read_text()
    block = re.search(r"```python\n(# campaign\.py.*?)```", text, re.S)
    assert block, "docs/batch.md has no SLURM recipe"
    call = next(n for n in ast.walk(ast.parse(block.group(1)))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "SLURMCluster")
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def test_the_documented_recipe_is_what_qa2_runs() -> None:
    recipe = _recipe()
    site = {k: recipe.pop(k) for k in ("queue", "account", "local_directory", "log_directory")
            if k in recipe}
    prologue = [line for line in recipe["job_script_prologue"] if not line.startswith("export DASK_")]
    expected = qslurm.cluster_kwargs(job_script_prologue=prologue, **site)
    assert recipe == {k: v for k, v in expected.items() if k not in site}
    assert recipe["worker_extra_args"] == ["--lifetime", "340m", "--lifetime-stagger", "10m"]


@pytest.mark.parametrize(("walltime", "lifetime", "stagger"), [
    ("06:00:00", "340m", "10m"), ("1-00:00:00", "1360m", "40m"), ("00:30:00", "1700s", "50s"),
    ("90", "85m", "150s"), ("2-12", "3400m", "100m"), ("10:00", "566s", "16s"),
])
def test_lifetime_is_a_dask_duration_shorter_than_the_walltime(walltime, lifetime, stagger) -> None:
    from dask.utils import parse_timedelta

    args = qslurm.lifetime_args(walltime)
    assert args == ["--lifetime", lifetime, "--lifetime-stagger", stagger]
    assert parse_timedelta(lifetime) + parse_timedelta(stagger) < qslurm.walltime_seconds(walltime)
    with pytest.raises(ValueError):
        parse_timedelta("5h40m")  # what the recipe said before: every worker died at start


def test_site_config_wins_and_lease_reaches_the_workers() -> None:
    import dask

    with dask.config.set({"jobqueue.slurm.walltime": "01:00:00", "jobqueue.slurm.memory": "8GB",
                          "jobqueue.slurm.job-script-prologue": ["module load qa2"]}):
        kw = qslurm.cluster_kwargs(queue="normal")
    assert kw["walltime"] == "01:00:00" and kw["memory"] == "8GB" and kw["queue"] == "normal"
    assert kw["worker_extra_args"] == ["--lifetime", "3400s", "--lifetime-stagger", "100s"]
    assert kw["job_script_prologue"] == [
        "export DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT=6s",
        "export DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL=2s", "module load qa2"]
    assert qslurm.cluster_kwargs()["walltime"] == "06:00:00"  # not dask-jobqueue's 30 min


def test_cluster_slurm_refuses_a_scheduler_too(run_qa2, tmp_path: Path) -> None:
    r = run_qa2("batch", tmp_path / "jobs.toml", "--cluster", "slurm", "--scheduler", "tcp://x:1")
    assert r.exit_code == 2 and "--cluster 'slurm'" in r.stderr
    r = run_qa2("batch", tmp_path / "jobs.toml", "--cluster", "pbs")
    assert r.exit_code == 2 and "--cluster 'pbs'" in r.stderr
