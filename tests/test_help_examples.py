"""Every example call that a command's --help prints works as printed, in a directory laid out
the way the examples assume (a reduction under red/, the PI script in ~/qa2mirror/, a pipeline
run, a jobs file). Only the batch call that names a remote scheduler cannot run here."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa2core.cli_examples import EXAMPLES

BIN = Path(sys.executable).parent
NOT_HERE = {"qa2 batch reprocessing.toml --scheduler tcp://head-node:8786 --per-filesystem 2 --json",
            "qa2 selftest"}  # a cluster we do not have; the bare selftest is tests/test_selftest.py
EXPECT_1 = {"qa2 verify 2015.1.00229.S --for-ingestion --json"}  # placeholders: not ingestible


@pytest.fixture
def laid_out(tmp_path, manual_sample, monkeypatch):
    from qa2core.testing import sampledata

    home = tmp_path / "home"
    (home / "qa2mirror").mkdir(parents=True)
    (home / "qa2mirror" / "scriptForPI.py").write_text(sampledata.pi_script_text())
    shutil.copytree(manual_sample.root, tmp_path / "red" / "IRC10216_setup3_b6", symlinks=True)
    (tmp_path / "README.header.txt").write_text(
        "Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 3\n"
        "Project code: 2015.1.00229.S\nSB name: IRC10216_setup3_b6\n#####\n")
    run = sampledata.build_tp_pipeline_run(tmp_path)
    assert run.root.name == "2013.1.00911.S_2015_08_07T16_10_05.732"
    (tmp_path / "reprocessing.toml").write_text(
        '[[job]]\ncommand = "verify"\npackpath = "2015.1.00229.S"\n')
    (tmp_path / "tmp").mkdir()  # the examples' /tmp/... paths, made the test's own (_here)
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("QA2_DEBUG", None)
    return tmp_path, env


def test_every_help_example_works_as_printed(laid_out):
    cwd, env = laid_out
    order = ["package", "stage", "verify", "tar", "detect", "plugins", "styles", "inspect",
             "batch", "selftest"]
    assert set(order) == set(EXAMPLES)
    ran = 0
    for command in order:
        for example in EXAMPLES[command]:
            if example in NOT_HERE:
                continue
            if command == "batch" and importlib.util.find_spec("distributed") is None:
                continue
            # the first package example packages for real, so verify and tar have data
            line = example + (" --mode copy" if example == EXAMPLES["package"][0] else "")
            line = _here(line, cwd)
            done = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=300)
            want = 1 if example in EXPECT_1 else 0
            assert done.returncode == want, f"{line}\n{done.stderr}"
            assert "Traceback" not in done.stderr and "internal error" not in done.stderr, line
            ran += 1
    assert ran >= 16
    assert (cwd / "2015.1.00229.S_001_of_001.tar").exists() or list(cwd.glob("2015.1.00229.S_*.tar"))


def _here(line: str, cwd: Path) -> str:
    """An example's absolute /tmp path made this test's own: two runs at once never share a
    directory, and nothing is written outside the test's temporary directory."""
    return re.sub(r"/tmp/([\w.-]+)", lambda m: str(cwd / "tmp" / m.group(1)), line)


def test_examples_write_only_below_the_test_directory(tmp_path):
    for examples in EXAMPLES.values():
        for example in examples:
            line = _here(example, tmp_path).replace(str(tmp_path), "TMP")
            assert not re.search(r"(^|[\s=])/tmp/", line), line


def test_version_names_qa2core_and_every_plugin():
    done = subprocess.run([str(BIN / "qa2"), "--version"], capture_output=True, text=True)
    from qa2core import __version__

    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[0] == f"qa2core {__version__}"
    for name, dist in (("interferometric", "qa2-interferometric"), ("totalpower", "qa2-totalpower"),
                       ("pipeline", "qa2-pipeline")):
        assert any(line.split()[:1] == [name] and line.split()[-1] == dist for line in lines[1:])
