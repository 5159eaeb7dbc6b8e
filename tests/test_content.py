"""Nothing is dropped quietly, mistakes are caught before anything is written, and verify checks
the names and README a delivery needs (docs/domain.md §8.1, §8.2, §8.5)."""

from __future__ import annotations

import json

import pytest

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.errors import Qa2Error
from qa2core.planning import paths
from qa2core.testing import write_tree

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"


def _rules(report, level=None):
    return {f.rule for f in report.findings if level is None or str(f.level) == level}


@pytest.fixture
def many_left_out(toy_tree):
    write_tree(toy_tree, {f"notes/n{i:02d}.txt": "x" for i in range(14)})
    write_tree(toy_tree, {"uid___A002_X1_X2.qa2_ampVsTime.PNG": b"png"})
    return toy_tree


@pytest.mark.mutates_source  # adds files to the toy reduction before packaging it
def test_the_run_ends_with_what_was_left_out_one_line_per_item(run_qa2, toy_pm, many_left_out,
                                                                tmp_path, piscript, monkeypatch):
    from qa2core import cli

    monkeypatch.setattr(cli, "_plugins", lambda: toy_pm)
    dst = tmp_path / "2015.1.00123.S"
    r = run_qa2("package", many_left_out, dst, "--piscript", piscript)
    assert r.exit_code == 0, r.stderr
    lines = r.stderr.splitlines()
    head = next(i for i, line in enumerate(lines) if "left out 17 item(s)" in line)
    assert lines[head + 1] == "qa2:   marker file (1):" or "not recognised" in lines[head + 1]
    shown = [line for line in lines if line.startswith("qa2:     notes/")]
    assert len(shown) == 10 and "qa2:     ... and 6 more" in lines  # 14 notes, notes.txt, a plot
    warn = [line for line in lines if "[qa.not_packaged]" in line]
    assert warn == ["qa2: warning: uid___A002_X1_X2.qa2_ampVsTime.PNG: QA report not packaged "
                    "(no plugin rule takes it) [qa.not_packaged]"]
    # the full list: --json and the journal
    r = run_qa2("package", many_left_out, dst, "--piscript", piscript, "--json", "--dry-run")
    data = json.loads(r.stdout)
    assert len(data["unclassified"]) == 16 and len(data["skipped"]) == 1
    left = json.loads(paths.journal_file(dst).read_text())["left_out"]
    assert len(left) == 17 and ["toy.marker", "marker file"] in left


@pytest.mark.parametrize("mode", ["ticket", "copy", "hard"])
def test_a_piscript_that_is_no_scriptforpi_is_refused(toy_pm, toy_tree, tmp_path, mode):
    wrong = write_tree(tmp_path / "m", {"scriptForFluxCalibration.py": "# flux\n"})
    dst = tmp_path / "2015.1.00123.S"
    with pytest.raises(Qa2Error, match=r"scriptForFluxCalibration.py is not a scriptForPI.*"
                                       r"\[script.piscript_identity\]"):
        engine.package(toy_tree, dst, piscript=wrong / "scriptForFluxCalibration.py", mode=mode,
                       plugins=toy_pm)
    assert not dst.exists()


@pytest.mark.parametrize("mode", ["fake", "ticket", "copy"])
def test_a_piscript_that_is_no_scriptforpi_is_refused_in_every_mode(toy_pm, toy_tree, tmp_path,
                                                                     mode):
    """The rehearsal refuses what the real run refuses (issue 18), with the same line."""
    wrong = write_tree(tmp_path / "m", {"flux.py": "# flux\n"}) / "flux.py"
    with pytest.raises(Qa2Error, match=r"flux\.py is not a scriptForPI.*\[script\.piscript_identity\]"):
        engine.package(toy_tree, tmp_path / "2015.1.00123.S", piscript=wrong, plugins=toy_pm,
                       mode=mode)
    assert not (tmp_path / "2015.1.00123.S").exists()


def test_a_renamed_master_copy_is_known_by_its_id_line(toy_pm, toy_tree, tmp_path):
    master = write_tree(tmp_path / "m", {"pi_master.py": "# $Id: scriptForPI.py,v 2.5 2023/10/03 "
                                         "dpetry Exp $\n"}) / "pi_master.py"
    dst = tmp_path / "2015.1.00123.S"
    engine.package(toy_tree, dst, piscript=master, mode="copy", plugins=toy_pm)
    found = [f for f in verify(dst, plugins=toy_pm).findings if f.rule == "script.piscript_version"]
    assert [f.message for f in found] == ["scriptForPI version 2.5"]


def test_verify_wants_a_project_code_and_a_matching_readme_header(toy_pm, toy_tree, tmp_path,
                                                                  header, piscript):
    odd = tmp_path / "IRAS_delivery"
    engine.package(toy_tree, odd, piscript=piscript, readme_path=header, mode="copy",
                   plugins=toy_pm)
    assert "structure.project_code" in _rules(verify(odd, plugins=toy_pm), "WARN")
    strict = verify(odd, for_ingestion=True, plugins=toy_pm)
    assert {"structure.project_code", "readme.project_code"} <= _rules(strict, "ERROR")
    assert not strict.ok

    bare = tmp_path / "2015.1.00123.S"
    engine.package(toy_tree, bare, piscript=piscript, mode="copy", plugins=toy_pm)
    assert "readme.header" in _rules(verify(bare, plugins=toy_pm), "WARN")
    assert "readme.header" in _rules(verify(bare, for_ingestion=True, plugins=toy_pm), "ERROR")


def test_a_readme_header_for_another_project_is_a_warning_while_packaging(toy_pm, toy_tree,
                                                                          tmp_path, header,
                                                                          piscript):
    report = engine.package(toy_tree, tmp_path / "2016.1.01435.S", piscript=piscript,
                            readme_path=header, plugins=toy_pm)
    assert any("says project code 2015.1.00123.S, PACKPATH is 2016.1.01435.S" in w
               for w in report.warnings)


def test_a_matching_package_verifies_for_ingestion(toy_pm, toy_tree, tmp_path, header, piscript):
    dst = tmp_path / "2015.1.00123.S"
    engine.package(toy_tree, dst, piscript=piscript, readme_path=header, mode="copy",
                   ous_uids="uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69",
                   plugins=toy_pm)
    report = verify(dst, for_ingestion=True, plugins=toy_pm)
    assert report.ok, [f.line() for f in report.findings]
    assert "scriptForPI version 1.23" in {f.message for f in report.findings}


def test_dry_run_prints_the_plan_grouped_by_directory(run_qa2, toy_pm, toy_tree, tmp_path,
                                                      piscript, monkeypatch):
    from qa2core import cli

    monkeypatch.setattr(cli, "_plugins", lambda: toy_pm)
    dst = tmp_path / "2015.1.00123.S"
    r = run_qa2("package", toy_tree, dst, "--piscript", piscript, "--mode", "hard", "--dry-run")
    assert r.exit_code == 0 and not dst.exists()
    lines = r.stderr.splitlines()
    product = lines.index("qa2:   product/")
    assert lines[product + 1] == (f"qa2:     target.image.pbcor.fits  <- img/target.image.pbcor.fits"
                                  f"  link  {(toy_tree / 'img/target.image.pbcor.fits').stat().st_size}"
                                  " B  [toy]")
    assert lines[product + 2].startswith("qa2:     target.pb.fits.gz  <- img/target.pb.fits  gzip")
    pb = (toy_tree / "img/target.pb.fits").stat().st_size
    totals = next(line for line in lines if line.startswith("qa2: totals:"))
    assert f"compress {pb} B; needs about {pb} B" in totals


def test_a_run_that_would_not_fit_is_refused_before_writing(toy_pm, toy_tree, tmp_path, piscript,
                                                            monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(engine.shutil, "disk_usage", lambda _p: usage(100, 90, 10))
    dst = tmp_path / "2015.1.00123.S"
    needed = sum(p.stat().st_size for p in toy_tree.rglob("*") if p.is_file()
                 and p.name not in ("toy.marker", "notes.txt")) + piscript.stat().st_size
    with pytest.raises(Qa2Error, match=rf"needs about {needed} bytes, its file system has 10 free"):
        engine.package(toy_tree, dst, piscript=piscript, mode="copy", plugins=toy_pm)
    assert not dst.exists() and not paths.state_dir(dst).exists()


def test_qa2_debug_shows_the_hook_traceback(run_qa2, qa2_pm, tmp_path, monkeypatch):
    from qa2core import Claim, cli, hookimpl

    class Broken:
        @hookimpl
        def qa2_detect(self, delivery):
            return Claim(50, "mine")

        @hookimpl
        def qa2_collect(self, delivery):
            return {"x": 1}["missing_key_here"]

    qa2_pm.register(Broken(), name="broken")
    monkeypatch.setattr(cli, "_plugins", lambda: qa2_pm)
    red = write_tree(tmp_path / "red", {"a.txt": "x"})
    quiet = run_qa2("detect", red)
    assert quiet.exit_code == 1 and "Traceback" not in quiet.stderr
    assert "qa2: error: plugin 'broken' failed in qa2_collect: KeyError('missing_key_here')" in quiet.stderr
    monkeypatch.setenv("QA2_DEBUG", "1")
    loud = run_qa2("detect", red)
    assert loud.exit_code == 1 and "Traceback" in loud.stderr and "missing_key_here" in loud.stderr
