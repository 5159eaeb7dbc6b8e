"""Batch is the CLI (issue 18 item 3): one request model (qa2core.planning.requests) parses a job's
options as ``qa2 package/stage/verify/tar`` parse theirs, and the PACKPATH's parent is checked
where the job runs, never created. Jobs run in this process (a serial executor), except one
on a real Dask LocalCluster."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="qa2 batch needs the batch extra: "
                    "pip install 'qa2core[batch]' (make bootstrap installs it)")

from qa2core import cli as qa2_cli
from qa2core import engine, hookimpl
from qa2core.batch import ExecutorSettings
from qa2core.batch import jobs as jobsfile
from qa2core.batch.dask_executor import DaskExecutor
from qa2core.batch.run import run_campaign
from qa2core.batch.worker import run_task
from qa2core.checks.verify import verify
from qa2core.planning import paths, requests
from qa2core.testing import sampledata, tree_state

REAL_AUX_MEMBER = "/".join(f"{level}.{uid}" for level, uid in
                           zip(("science_goal", "group", "member"), sampledata.AUX_OUS, strict=True))


class SerialExecutor:
    """The jobs one after another in this process; ``before`` runs first (e.g. an unmount)."""

    name = "serial"

    def __init__(self, before=lambda: None) -> None:
        self.before = before

    def run(self, tasks, on_event):
        self.before()
        for task in tasks:
            yield task, run_task(task, on_event)


class Executors:
    """Offers ``serial`` and ``dask-unmounted`` (the Dask executor, after ``before``)."""

    def __init__(self, before=lambda: None, workers: int = 1) -> None:
        self.before, self.workers = before, workers

    @hookimpl
    def qa2_batch_executor(self, name, settings):
        if name == "serial":
            return SerialExecutor(self.before)
        if name == "dask-unmounted":
            dask = DaskExecutor(ExecutorSettings(None, self.workers, settings.per_filesystem))

            class Unmounted:
                name = "dask-unmounted"

                def run(inner, tasks, on_event):
                    self.before()
                    yield from dask.run(tasks, on_event)

            return Unmounted()
        return None


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def tp_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (copy mode) one-member package to tar."""
    base = tmp_path_factory.mktemp("tp")
    sampledata.build_staged_tp_tree(base / "src")
    (base / "pack").mkdir()
    pack = base / "pack" / sampledata.TP_PROJECT
    engine.package(base / "src" / sampledata.TP_PROJECT, pack, mode="copy")
    assert verify(pack).ok
    return pack


def test_a_tar_job_writes_to_out(tmp_path: Path, tp_package: Path, qa2_pm) -> None:
    """Was: internal error: TypeError("unsupported operand type(s) for /: 'str' and 'str'")."""
    qa2_pm.register(Executors(), name="test-executors")
    (tmp_path / "tars").mkdir()
    beside = set(os.listdir(tp_package.parent))
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(f"""
[[job]]
name = "tar"
command = "tar"
packpath = "{tp_package}"
out = "tars"
max_size = 1.0
""")
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm)
    (outcome,) = result.outcomes
    assert outcome.status == "succeeded", outcome.errors
    tar = f"{sampledata.TP_PROJECT}_001_of_001.tar"
    assert sorted(os.listdir(tmp_path / "tars")) == [tar, f"{tar}.md5sum", f"{tar}.sha256"]
    assert set(os.listdir(tp_package.parent)) == beside  # nothing beside PACKPATH
    # the ledger's record is what the CLI would print
    record = [json.loads(line) for line in result.ledger.read_text().splitlines()][-2]
    assert record["state"] == "succeeded" and record["result"]["tars"] == [str(tmp_path / "tars" / tar)]


def test_an_ous_uids_auto_job_names_the_ous_as_the_cli_does(run_qa2, tmp_path: Path, piscript,
                                                          qa2_pm) -> None:
    """``ous_uids = "auto"`` is accepted, as by ``qa2 package``: the same real names."""
    qa2_pm.register(Executors(), name="test-executors")
    run = sampledata.build_auxproducts_run(tmp_path / "runs")
    before = tree_state(run.root)
    for d in ("cli", "batch"):
        (tmp_path / d).mkdir()
    options = ["--mode", "copy", "--style", "cycle4-pipe", "--piscript", piscript]
    r = run_qa2("package", run.root, tmp_path / "cli" / run.project, *options,
                "--ous-uids", "auto", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["member"] == REAL_AUX_MEMBER
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(f"""
[defaults]
ous_uids = "auto"
[[job]]
name = "auto"
command = "package"
origpath = "{run.root}"
packpath = "batch/{run.project}"
mode = "copy"
style = "cycle4-pipe"
piscript = "{piscript}"
""")
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm)
    (outcome,) = result.outcomes
    assert outcome.status == "succeeded", outcome.errors
    pack = tmp_path / "batch" / run.project
    assert (pack / REAL_AUX_MEMBER / "README").is_file()
    assert _files(pack) == _files(tmp_path / "cli" / run.project)
    assert tree_state(run.root) == before


def _missing_parent_jobs(tmp_path: Path) -> tuple[Path, Path, Path]:
    src = sampledata.build_staged_tp_tree(tmp_path / "src")
    assert src == tmp_path / "src" / sampledata.TP_PROJECT
    mount = tmp_path / "deliveries"  # the delivery file system, absent on the worker
    (mount / "tp").mkdir(parents=True)
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(f"""
[[job]]
name = "tp"
command = "package"
mode = "copy"
origpath = "{src}"
packpath = "deliveries/tp/{sampledata.TP_PROJECT}"
""")
    return jobs, mount, mount / "tp" / sampledata.TP_PROJECT


def _assert_refused_as_the_cli(run_qa2, outcome, pack: Path, tmp_path: Path) -> None:
    message = f"{pack.parent}: parent directory of PACKPATH does not exist"
    assert outcome.status == "failed" and outcome.errors == [message]
    assert f"qa2: error: {message}" in Path(outcome.log).read_text()
    assert Path(outcome.log).parent == tmp_path / "jobs.logs"  # beside the jobs file
    assert not (tmp_path / "deliveries").exists()  # nothing created, anywhere below it
    r = run_qa2("package", tmp_path / "src" / sampledata.TP_PROJECT, pack, "--mode", "copy")
    assert r.exit_code == 2 and r.stderr.splitlines() == [f"qa2: error: {message}"]


def test_a_job_whose_packpath_parent_is_missing_where_it_runs_fails(run_qa2, tmp_path: Path,
                                                                    qa2_pm) -> None:
    """Checked when the file is read (the parent exists there), then the node that runs the job
    lacks the delivery file system: the job fails with the CLI's message and nothing is made
    (was: the worker made PACKPATH.qa2/ and its parents for the job's log)."""
    jobs, mount, pack = _missing_parent_jobs(tmp_path)
    qa2_pm.register(Executors(before=lambda: [d.rmdir() for d in (mount / "tp", mount)]),
                    name="test-executors")
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm)
    assert not result.ok
    _assert_refused_as_the_cli(run_qa2, result.outcomes[0], pack, tmp_path)


def test_the_same_on_a_dask_local_cluster(run_qa2, tmp_path: Path, qa2_pm) -> None:
    jobs, mount, pack = _missing_parent_jobs(tmp_path)
    qa2_pm.register(Executors(before=lambda: [d.rmdir() for d in (mount / "tp", mount)]),
                    name="test-executors")
    result = run_campaign(jobs, executor="dask-unmounted", plugins=qa2_pm)
    _assert_refused_as_the_cli(run_qa2, result.outcomes[0], pack, tmp_path)


def test_a_missing_packpath_parent_is_refused_up_front_too(run_qa2, tmp_path: Path) -> None:
    jobs, mount, _pack = _missing_parent_jobs(tmp_path)
    (mount / "tp").rmdir()
    r = run_qa2("batch", jobs)
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [f"qa2: error: jobs.toml: job 1 (tp): key 'packpath': "
                                     f"{mount / 'tp'}: parent directory of PACKPATH does not exist"]
    assert sorted(os.listdir(tmp_path)) == ["deliveries", "jobs.toml", "src"]
    assert os.listdir(mount) == []


# ---------------------------------------------------------------------------- same words


def _cases(tmp_path: Path, piscript: Path, pack: Path) -> list[tuple[str, str, list[str], str]]:
    """(command, key, TOML value, CLI arguments after the positional ones) of one bad value."""
    return [
        ("package", "mode", '"paper"', ["--mode", "paper"]),
        ("package", "append", '"all"', ["--append", "all"]),
        ("package", "style", '"cycle99"', ["--style", "cycle99"]),
        ("package", "ous_uids", '"uid://A001/X1/X2"', ["--ous-uids", "uid://A001/X1/X2"]),
        ("package", "jobs", "0", ["--jobs", "0"]),
        ("package", "readme", f'"{tmp_path}/nohead.txt"', ["--readme", f"{tmp_path}/nohead.txt"]),
        ("package", "piscript", f'"{tmp_path}/nopi.py"', ["--piscript", f"{tmp_path}/nopi.py"]),
        ("package", "packpath", f'"{tmp_path}/no/P"', None),
        ("stage", "mode", '"ticket"', ["--mode", "ticket"]),
        ("verify", "jobs", "0", ["--jobs", "0"]),
        ("verify", "style", '"cycle99"', ["--style", "cycle99"]),
        ("tar", "max_size", "0", ["--max-size", "0"]),
        ("tar", "out", f'"{tmp_path}/nowhere"', ["--out", f"{tmp_path}/nowhere"]),
        ("tar", "ous_uids", '"auto"', ["--ous-uids", "auto"]),  # tar takes no auto
    ]


def test_a_bad_value_gets_the_same_words_from_the_cli_and_the_jobs_file(
        run_qa2, tmp_path: Path, piscript: Path, tp_package: Path) -> None:
    src = tmp_path / "red"
    src.mkdir()
    (src / "a.py").write_text("x\n")
    (tmp_path / "out").mkdir()
    for command, key, value, cli in _cases(tmp_path, piscript, tp_package):
        positional = {"package": [src, tmp_path / "out" / "P"],
                      "stage": [src, tmp_path / "out" / "S"],
                      "verify": [tp_package], "tar": [tp_package]}[command]
        if key == "packpath":
            positional, cli = [src, tmp_path / "no" / "P"], []
        r = run_qa2(command, *positional, *cli)
        assert r.exit_code == 2, (command, key, r.stderr)
        (line,) = r.stderr.splitlines()
        assert line.startswith("qa2: error: ")
        names = requests.positional(command)
        table = "\n".join(f'{n} = "{p}"' for n, p in zip(names, positional, strict=True))
        jobs = tmp_path / "jobs.toml"
        jobs.write_text(f'[[job]]\ncommand = "{command}"\n{table}\n' +
                        (f"{key} = {value}\n" if key not in names else ""))
        with pytest.raises(jobsfile.JobsFileError) as refused:
            jobsfile.load(jobs)
        assert refused.value.lines == (
            f"jobs.toml: job 1: key {key!r}: {line.removeprefix('qa2: error: ')}",), (command, key)
        assert not (tmp_path / "no").exists() and os.listdir(tmp_path / "out") == []


def test_a_jobs_file_lists_every_problem_of_a_job(tmp_path: Path) -> None:
    (tmp_path / "red").mkdir()
    (tmp_path / "jobs.toml").write_text("""
[defaults]
jobs = 0
[[job]]
command = "package"
origpath = "red"
packpath = "P"
mode = "paper"
noms = "yes"
""")
    with pytest.raises(jobsfile.JobsFileError) as refused:
        jobsfile.load(tmp_path / "jobs.toml")
    assert refused.value.lines == (
        "jobs.toml: job 1: key 'mode': unknown mode 'paper'; valid: fake, ticket, copy, hard",
        "jobs.toml: job 1: key 'noms': --noms: must be a bool, not str 'yes'",
        "jobs.toml: job 1: key 'jobs' (from [defaults]): --jobs 0: must be positive",
    )


@pytest.mark.parametrize("command", ["package", "stage", "verify", "tar"])
def test_the_jobs_file_keys_are_the_cli_parameters(command: str) -> None:
    cli = {"tar": qa2_cli.tar_}.get(command) or getattr(qa2_cli, command)
    params = [p for p in inspect.signature(cli).parameters if p not in ("dry_run", "as_json")]
    assert sorted(jobsfile.OPTIONS[command]) == sorted(params)
    assert jobsfile.POSITIONAL[command] == tuple(params[:len(jobsfile.POSITIONAL[command])])


def test_nothing_is_made_beside_packpath_for_the_log(tmp_path: Path, qa2_pm) -> None:
    """A job's log and attempt count live beside the jobs file, not in PACKPATH.qa2/."""
    jobs, _mount, pack = _missing_parent_jobs(tmp_path)
    qa2_pm.register(Executors(), name="test-executors")
    result = run_campaign(jobs, executor="serial", plugins=qa2_pm)
    assert result.ok and verify(pack).ok
    state = paths.state_dir(pack)
    assert not any(p.name.startswith("batch-") for p in state.iterdir()) if state.exists() else True
    assert sorted(os.listdir(tmp_path / "jobs.logs")) == ["tp.attempts", "tp.done", "tp.log"]
