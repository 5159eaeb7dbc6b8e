"""A batch bug that once survived the whole ``make test`` (issue 17 item 15), on a real Dask
LocalCluster started by ``qa2 batch`` itself: the per-file-system limit must hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="qa2 batch needs the batch extra: "
                    "pip install 'qa2core[batch]' (make bootstrap installs it)")

from qa2core.testing import write_tree

PROJECT = "2015.1.00123.S"
MANUAL = {
    "Calibration_X2/uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "Imaging/scriptForImaging.py": "# imaging\n",
    "casa-20160101-000000.log": "log\n",
}
# Loaded by every worker and job process of the campaign (PYTHONPATH, as
# qa2core.testing.SLOW_COPY_HOOK): each package run notes "start PACKPATH" and "end PACKPATH"
# in the events file and, after its start, waits (up to 3 s) for a second job to start, so
# that two jobs the limit lets through do overlap. Only the order of the events is checked, never a duration.
EVENTS_HOOK = """\
import os
events = os.environ.get("QA2_TEST_EVENTS")
if events:
    import time
    from qa2core import engine
    _package = engine.package
    def _note(line):
        fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (line + "\\n").encode())
        os.close(fd)
    def package(origpath, packpath, *args, **kwargs):
        _note(f"start {packpath}")
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            with open(events) as fh:
                if fh.read().count("start ") >= 2:
                    break
            time.sleep(0.05)
        try:
            return _package(origpath, packpath, *args, **kwargs)
        finally:
            _note(f"end {packpath}")
    engine.package = package
"""


def test_per_filesystem_1_never_lets_two_jobs_overlap(run_qa2, tmp_path: Path, piscript,
                                                      monkeypatch) -> None:
    """Bug: the per-file-system limit set to the worker count: with ``--workers 2
    --per-filesystem 1`` two jobs writing to one file system ran at once."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(EVENTS_HOOK)
    events = tmp_path / "events.txt"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook),
                                                                    os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("QA2_TEST_EVENTS", str(events))
    for name in ("a", "b"):
        write_tree(tmp_path / f"red-{name}", MANUAL)
        (tmp_path / "out" / name).mkdir(parents=True)
    jobs = tmp_path / "jobs.toml"
    jobs.write_text("".join(f"""
[[job]]
name = "{name}"
command = "package"
mode = "copy"
style = "cycle3-nopipe"
piscript = "{piscript}"
origpath = "red-{name}"
packpath = "out/{name}/{PROJECT}"
""" for name in ("a", "b")))

    r = run_qa2("batch", jobs, "--workers", "2", "--per-filesystem", "1", "--json")

    assert r.exit_code == 0, r.stderr
    assert {j["job"]: j["status"] for j in json.loads(r.stdout)["jobs"]} == {
        "a": "succeeded", "b": "succeeded"}
    seen = [line.split(" ", 1) for line in events.read_text().splitlines()]
    assert sorted(path for kind, path in seen if kind == "start") == [
        str(tmp_path / "out" / name / PROJECT) for name in ("a", "b")]
    # One job at a time: every start is followed by that job's end before the next start.
    assert [kind for kind, _ in seen] == ["start", "end", "start", "end"], seen
    assert seen[0][1] == seen[1][1] and seen[2][1] == seen[3][1], seen
