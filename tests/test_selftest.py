"""``qa2 selftest`` (and ``make demo``): every sample in every mode, verified; a pass/fail table."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = ("manual", "totalpower", "pipeline")
MODES = ("fake", "ticket", "copy", "hard")
PROJECTS = {"manual": "2015.1.00123.S", "totalpower": "2016.1.00234.S", "pipeline": "2017.1.00271.S"}
MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
HAVE_CASA = importlib.util.find_spec("casatools") is not None


def _table(stdout: str) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(sample, mode, step) -> (result, detail) from the table on stdout."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["sample", "mode", "step", "result", "time", "detail"], lines[0]
    rows = {}
    for line in lines[1:]:
        if line.startswith(("skipped:", "packages:", "selftest:")):
            break
        sample, mode, step, result, _seconds, *detail = line.split(None, 5)
        assert (sample, mode, step) not in rows, f"twice: {line}"
        rows[sample, mode, step] = (result, detail[0] if detail else "")
    return rows


def _verdict(stdout: str) -> str:
    (line,) = [x for x in stdout.splitlines() if x.startswith("selftest: ")]
    return line


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One in-process ``qa2 selftest`` for the module (it takes some seconds)."""
    if not HAVE_CASA:
        pytest.skip("the full selftest needs casatools (make bootstrap)")
    from typer.testing import CliRunner

    from qa2core.cli import app

    work = tmp_path_factory.mktemp("selftest") / "demo"
    result = CliRunner().invoke(app, ["selftest", "--workdir", str(work)])
    return result, work


def test_every_sample_in_every_mode_passes(full_run):
    result, _work = full_run
    assert result.exit_code == 0, result.stdout + result.stderr
    rows = _table(result.stdout)
    expected = {(s, "-", "build") for s in SAMPLES} | {("pipeline", "-", "stage")}
    expected |= {(s, m, step) for s in SAMPLES for m in MODES for step in ("package", "verify")}
    assert set(rows) == expected
    assert {key: r for key, r in rows.items() if r[0] != "PASS"} == {}
    for sample in SAMPLES:
        for mode in ("fake", "ticket"):
            assert "FAKE package" in rows[sample, mode, "verify"][1]
    verdict = _verdict(result.stdout)
    assert verdict.startswith(f"selftest: PASSED: {len(expected)} passed, 0 failed, 0 skipped in ")
    assert float(verdict.split(" in ")[1].split()[0]) < 60  # the promise: under a minute


def test_packages_are_where_the_table_says_with_real_content(full_run):
    result, work = full_run
    rows = _table(result.stdout)
    assert f"packages: {work}/<sample>/<mode>/<project>" in result.stdout.splitlines()
    for sample in SAMPLES:
        for mode in MODES:
            pack = work / sample / mode / PROJECTS[sample]
            assert str(pack / MEMBER) in rows[sample, mode, "package"][1]
            sizes = [p.stat().st_size for p in (pack / MEMBER).rglob("*")
                     if p.is_file() and p.name != "README"]  # the README is real in every mode
            assert sizes and (max(sizes) == 0) is (mode in ("fake", "ticket")), (sample, mode)
            assert (pack / "manifest-sha256.txt").is_file() is (mode in ("copy", "hard"))
    hard = work / "manual/hard" / PROJECTS["manual"] / MEMBER / "script/scriptForImaging.py"
    assert os.stat(hard).st_ino == os.stat(work / "manual/reduction/Imaging/scriptForImaging.py").st_ino
    assert (work / "manual/copy" / PROJECTS["manual"] / MEMBER /
            "product/calibrated_final_cont.mask.tgz").stat().st_size > 0
    staged = work / "pipeline/staged" / PROJECTS["pipeline"] / MEMBER
    assert str(staged) in rows["pipeline", "-", "stage"][1]
    assert (staged / "script/scriptForPI.py").stat().st_size > 0


def test_without_casatools_it_runs_what_it_can_and_says_what_it_skipped(tmp_path):
    """casatools cannot be imported (None in sys.modules): the pipeline sample still runs."""
    work = tmp_path / "nocasa"
    code = ("import sys; sys.modules['casatools'] = None\n"
            "from qa2core.cli import main\n"
            f"main(['selftest', '--workdir', {str(work)!r}])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "QA2_DEBUG": ""})
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _table(r.stdout)
    for sample in ("manual", "totalpower"):
        result, detail = rows[sample, "-", "build"]
        assert result == "SKIP" and "casatools is not installed" in detail
        assert not [key for key in rows if key[0] == sample and key[2] != "build"]
        assert f"skipped: {sample}: casatools is not installed" in r.stdout
        assert f"skipping the {sample} sample: casatools" in r.stderr
        assert not (work / sample).exists()
    assert {key: res for key, (res, _d) in rows.items() if key[0] == "pipeline"} == {
        ("pipeline", "-", "build"): "PASS", ("pipeline", "-", "stage"): "PASS",
        **{("pipeline", m, step): "PASS" for m in MODES for step in ("package", "verify")}}
    assert _verdict(r.stdout).startswith("selftest: PASSED: 10 passed, 0 failed, 2 skipped in ")


def test_a_failing_step_fails_the_selftest(run_qa2, tmp_path, monkeypatch):
    from qa2core.testing import selftest

    # A manual style on the staged pipeline tree: qa2 refuses it in every mode.
    monkeypatch.setattr(selftest, "SAMPLES", ("pipeline",))
    monkeypatch.setitem(selftest.STYLES, "pipeline", "cycle2-nopipe")
    r = run_qa2("selftest", "--workdir", tmp_path / "w")
    assert r.exit_code == 1
    rows = _table(r.stdout)
    for mode in MODES:
        result, detail = rows["pipeline", mode, "package"]
        assert result == "FAIL" and "style.pipeline" in detail
        assert rows["pipeline", mode, "verify"] == ("SKIP", "not run: packaging failed")
    assert rows["pipeline", "-", "stage"][0] == "PASS"
    assert _verdict(r.stdout).startswith("selftest: FAILED: 2 passed, 4 failed, 4 skipped")
    assert "qa2: selftest: pipeline copy package FAILED: " in r.stderr


def test_workdir_it_did_not_make_is_refused_and_its_own_is_reused(run_qa2, tmp_path, monkeypatch):
    from qa2core.testing import selftest

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    r = run_qa2("selftest", "--workdir", mine)
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == (f"qa2: error: {mine}: not empty and not made by "
                                         "'qa2 selftest'; choose another --workdir")
    assert (mine / "thesis.tex").read_text() == "keep me"

    monkeypatch.setattr(selftest, "SAMPLES", ("pipeline",))
    work = tmp_path / "w"
    assert run_qa2("selftest", "--workdir", work).exit_code == 0
    (work / "pipeline" / "left-over").write_text("")
    assert run_qa2("selftest", "--workdir", work).exit_code == 0  # re-runnable in place
    assert not (work / "pipeline" / "left-over").exists()


def test_make_demo_runs_the_selftest_into_demo_output():
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert "DEMO_DIR ?= $(CURDIR)/demo-output" in makefile
    assert "\t$(BIN)/qa2 selftest --workdir $(DEMO_DIR)\n" in makefile
