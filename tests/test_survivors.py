"""Bugs that once survived the whole ``make test`` (issue 17 item 15), each pinned by what a user
sees: exit codes, messages and the files on disk. Each test passes on correct code and fails
with its bug planted (the bug is named in the test's docstring)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from qa2core.errors import Qa2Error
from qa2core.testing import SerialExecutorPlugin, fits_header, tree_state, write_tree
from qa2core.testing import sampledata as sd
from qa2core.writing import manifest

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
PROJECT = "2015.1.00123.S"
UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
MANUAL = {  # a manual reduction the interferometric plugin claims
    "Calibration_X2/uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "Imaging/scriptForImaging.py": "# imaging\n",
    "Imaging/target.image.pbcor.fits": fits_header("BUNIT   = 'Jy/beam '"),
    "Imaging/target.pb.fits": fits_header(),
    "casa-20160101-000000.log": "log\n",
}
STYLE = ("--style", "cycle3-nopipe")


def _package(run_qa2, src: Path, dst: Path, piscript: Path, *extra: str | Path) -> None:
    r = run_qa2("package", src, dst, "--piscript", piscript, *STYLE, *extra)
    assert r.exit_code == 0, r.stderr


def _verify(run_qa2, dst: Path, *args: str) -> tuple[int, list[dict]]:
    r = run_qa2("verify", dst, "--json", *args)
    return r.exit_code, json.loads(r.stdout)["findings"]


def _errors(findings: list[dict]) -> set[str]:
    return {f["rule"] for f in findings if f["level"] == "ERROR"}


# ------------------------------------------------------------ 1. --append group numbering


def test_append_group_after_a_group_was_removed_by_hand_takes_a_fresh_number(
        run_qa2, tmp_path, piscript):
    """Bug: the next group number is the count of groups + 1 (qa2core/planning/ous.py target): with
    group 2 removed by hand, the third append replaced group 3 (data loss)."""
    src = write_tree(tmp_path / "reduction", MANUAL)
    dst = tmp_path / PROJECT
    _package(run_qa2, src, dst, piscript, "--mode", "copy")
    for _ in range(2):
        _package(run_qa2, src, dst, piscript, "--mode", "copy", "--append", "group")
    sg = dst / "sg_ouss_id"
    assert sorted(p.name for p in sg.iterdir()) == ["group_ouss_2_id", "group_ouss_3_id",
                                                    "group_ouss_id"]
    shutil.rmtree(sg / "group_ouss_2_id")
    (sg / "group_ouss_3_id" / "member_ouss_id" / "README").write_bytes(b"group three\n")  # marked
    kept = {g: tree_state(sg / g) for g in ("group_ouss_id", "group_ouss_3_id")}

    r = run_qa2("package", src, dst, "--piscript", piscript, *STYLE, "--mode", "copy",
                "--append", "group")

    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in sg.iterdir()) == ["group_ouss_3_id", "group_ouss_4_id",
                                                    "group_ouss_id"]
    assert (sg / "group_ouss_4_id/member_ouss_id/README").is_file()
    assert {g: tree_state(sg / g) for g in kept} == kept  # no existing group's file changed


# ------------------------------------------------------------ 2. ORIGPATH containment


def test_a_link_into_a_sibling_whose_name_starts_like_origpath_is_refused(
        run_qa2, tmp_path, piscript):
    """Bug: the containment test is a bare prefix (fileops._inside without the "/"): a link
    from red/ to ../red-private/x counted as inside ORIGPATH and was shipped."""
    src = write_tree(tmp_path / "red", MANUAL)
    write_tree(tmp_path / "red-private", {"private.fits": b"SIMPLE  =  T / not yours" + bytes(64)})
    link = src / "Imaging" / "private.fits"  # a FITS: the plugin would ship it to product/
    link.symlink_to("../../red-private/private.fits")
    dst = tmp_path / PROJECT

    r = run_qa2("package", src, dst, "--piscript", piscript, *STYLE, "--mode", "copy")

    assert r.exit_code == 1, r.stderr
    assert any(line.startswith("qa2: error: ") and str(link) in line
               and "leaving ORIGPATH" in line for line in r.stderr.splitlines()), r.stderr
    assert not dst.exists()


# ------------------------------------------------------------ 3. directory links in a package


def test_a_directory_link_inside_a_package_fails_verify_and_tar(run_qa2, tmp_path, piscript):
    """Bug: the package walker (fileops.iter_package_files) skips symbolic links to
    directories: such a link passed verify, and tar went ahead."""
    src = write_tree(tmp_path / "reduction", MANUAL)
    dst = tmp_path / "deliver" / PROJECT
    dst.parent.mkdir()
    _package(run_qa2, src, dst, piscript, "--mode", "copy")
    elsewhere = write_tree(tmp_path / "elsewhere", {"notes.txt": "not for the PI\n"})
    (dst / MEMBER / "product" / "extra").symlink_to(elsewhere, target_is_directory=True)

    code, findings = _verify(run_qa2, dst)
    assert code == 1
    assert any(f["level"] == "ERROR" and f["rule"] == "structure.special"
               and f["path"] == f"{MEMBER}/product/extra" for f in findings), findings

    r = run_qa2("tar", dst)
    assert r.exit_code == 1
    assert any("refused to archive" in line and f"{MEMBER}/product/extra" in line
               for line in r.stderr.splitlines()), r.stderr
    assert sorted(p.name for p in dst.parent.iterdir() if ".tar" in p.name) == []


# ------------------------------------------------------------ 4. hard mode without manifest


def test_a_hard_mode_package_without_its_manifest_fails_verify(run_qa2, tmp_path, piscript):
    """Bug: ``manifest.absent`` checked for mode copy only: a hard-mode package without its
    manifest only warned (as a rehearsal)."""
    src = write_tree(tmp_path / "reduction", MANUAL)
    dst = tmp_path / PROJECT
    _package(run_qa2, src, dst, piscript, "--mode", "hard")
    assert run_qa2("verify", dst).exit_code == 0
    (dst / manifest.NAME).unlink()

    r = run_qa2("verify", dst)

    assert r.exit_code == 1
    assert any(line.startswith("qa2: error: ") and line.endswith("[manifest.absent]")
               for line in r.stderr.splitlines()), r.stderr


# ------------------------------------------------------------ 5. README without a project code


def test_a_readme_header_without_a_project_code_fails_for_ingestion(run_qa2, tmp_path, piscript):
    """Bug: the README project-code check skipped when the header names none (verify
    _delivery_rules): ``--for-ingestion`` passed."""
    src = write_tree(tmp_path / "reduction", MANUAL)
    dst = tmp_path / PROJECT
    header = tmp_path / "README.header.txt"
    header.write_bytes(b"Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 3\n"
                       b"PI name: A. Reducer\nComments from Reducer: none\n#####\n")
    _package(run_qa2, src, dst, piscript, "--mode", "copy", "--readme", header,
             "--ous-uids", UIDS)

    code, findings = _verify(run_qa2, dst, "--for-ingestion")

    assert code == 1
    errors = _errors(findings)
    assert errors & {"readme.project_code", "readme.header"}, findings
    assert errors <= {"readme.project_code", "readme.header"}, findings  # nothing else fails it


# ------------------------------------------------------------ 6, 7. FITS products


def _fits_package(run_qa2, tmp_path: Path, piscript: Path, products: dict[str, bytes]) -> Path:
    src = write_tree(tmp_path / "reduction", {**{k: v for k, v in MANUAL.items()
                                                 if not k.endswith(".fits")},
                                              **{f"Imaging/{k}": v for k, v in products.items()}})
    dst = tmp_path / PROJECT
    _package(run_qa2, src, dst, piscript, "--mode", "copy")
    return dst


def test_a_mask_with_a_single_pixel_neither_0_nor_1_is_refused(run_qa2, tmp_path, piscript):
    """Bug: a mask flagged only when more than one pixel is neither 0 nor 1 (images.py)."""
    from astropy.io import fits

    good = sd.write_mask_fits(tmp_path / "good.mask.fits")
    bad = sd.write_mask_fits(tmp_path / "bad.mask.fits")
    with fits.open(bad, mode="update") as hdul:
        hdul[0].data[0, 0, 0, 0] = 0.5  # the corner: outside the disk, so it was 0
    # The run reads the masks it gzips (issue 18: the real run refuses what verify would), so
    # the one bad pixel refuses the package itself, naming the mask.
    src = write_tree(tmp_path / "reduction", {
        **{k: v for k, v in MANUAL.items() if not k.endswith(".fits")},
        "Imaging/good.mask.fits": good.read_bytes(), "Imaging/bad.mask.fits": bad.read_bytes()})
    r = run_qa2("package", src, tmp_path / PROJECT, "--piscript", piscript, *STYLE,
                "--mode", "copy")
    assert r.exit_code == 1
    lines = [line for line in r.stderr.splitlines() if "[product.mask_values]" in line]
    assert len(lines) == 1 and "product/bad.mask.fits.gz: 1 pixel(s) neither 0 nor 1" in lines[0]
    assert not (tmp_path / PROJECT).exists()


def test_bunit_accepts_every_brightness_unit_and_flags_others(run_qa2, tmp_path, piscript):
    """Bug: BUNIT compared to ``Jy`` exactly (images.py): ``mJy/beam`` was warned. The rule
    (images._bunit_problem) accepts Jy/beam and Jy/pixel with any prefix (CASA's JY/BEAM too)
    and K; a unit that is no brightness (km/s) is warned."""
    good = sd.write_pbcor_fits(tmp_path / "g.fits").read_bytes()
    card = b"BUNIT   = 'Jy/beam '"
    assert good.count(card) == 1
    units = {"jy": b"'Jy/beam '", "caps": b"'JY/BEAM '", "mjy": b"'mJy/beam'",
             "pixel": b"'mJy/pixel'", "kelvin": b"'K       '", "speed": b"'km/s    '"}
    dst = _fits_package(run_qa2, tmp_path, piscript, {
        f"{name}.image.pbcor.fits": good.replace(card, b"BUNIT   = " + value)
        for name, value in units.items()})

    code, findings = _verify(run_qa2, dst)

    warned = {f["path"].rsplit("/", 1)[-1]: f for f in findings if f["rule"] == "product.bunit"}
    assert set(warned) == {"speed.image.pbcor.fits"}, findings
    assert warned["speed.image.pbcor.fits"]["level"] == "WARN"
    assert "'km/s' is not a brightness unit" in warned["speed.image.pbcor.fits"]["message"]
    assert code == 0  # a warning, not an error


# ------------------------------------------------------------ 8. the CASA-session API


def test_the_api_prints_every_line_of_a_refusal(tmp_path, piscript, capsys, monkeypatch):
    """Bug: the API (QA2_Packaging_module) printed only the first of several refusal lines."""
    from QA2_Packaging_module import QA_Packager

    monkeypatch.chdir(tmp_path)
    src = write_tree(tmp_path / "reduction", MANUAL)
    home = write_tree(tmp_path / "home", {"a.py": "secret a\n", "b.py": "secret b\n"})
    links = [src / "Imaging" / "one.py", src / "Imaging" / "two.py"]
    links[0].symlink_to(home / "a.py")
    links[1].symlink_to(home / "b.py")

    with pytest.raises(Qa2Error) as err:
        QA_Packager(origpath=str(src), packpath=str(tmp_path / PROJECT), PIscript=str(piscript),
                    style="cycle3-nopipe", mode="copy")

    assert len(err.value.lines) == 2
    lines = capsys.readouterr().err.splitlines()
    for link in links:
        assert any(line.startswith("qa2: error: ") and str(link) in line
                   and "leaving ORIGPATH" in line for line in lines), lines
    assert not (tmp_path / PROJECT).exists()


# ------------------------------------------------------------ 9. batch: what makes a job run again


@pytest.fixture
def campaign(tmp_path, piscript, qa2_pm):
    """(jobs file writer, run -> {job: status}) for one package job of a manual reduction."""
    from qa2core.batch.run import run_campaign

    qa2_pm.register(SerialExecutorPlugin(), name="serial-site")
    write_tree(tmp_path / "red", MANUAL)
    (tmp_path / "out").mkdir()
    jobs = tmp_path / "jobs.toml"

    def write(mode: str) -> None:
        jobs.write_text(f"""
[[job]]
name = "manual"
command = "package"
origpath = "red"
packpath = "out/{PROJECT}"
piscript = "{piscript}"
style = "cycle3-nopipe"
mode = "{mode}"
""")

    def run() -> dict[str, str]:
        result = run_campaign(jobs, executor="serial", plugins=qa2_pm)
        return {o.job.id: o.status for o in result.outcomes}

    return write, run


def _ledger_states(path: Path) -> list[str]:
    return [json.loads(line)["state"] for line in path.read_text().splitlines()
            if json.loads(line).get("job") == "manual"]


def test_batch_runs_a_job_again_when_its_mode_changed(campaign, tmp_path):
    """Bug: the spec hash (the job's options) dropped from the up-to-date check: a changed
    ``mode`` was skipped as up to date."""
    write, run = campaign
    write("fake")
    assert run() == {"manual": "succeeded"}
    assert run() == {"manual": "skipped"}
    write("copy")
    assert run() == {"manual": "succeeded"}
    assert (tmp_path / "out" / PROJECT / manifest.NAME).is_file()  # now a real package
    assert _ledger_states(tmp_path / "jobs.ledger.jsonl") == [
        "started", "succeeded", "skipped", "started", "succeeded"]


def test_batch_runs_a_job_again_after_a_same_size_source_edit(campaign, tmp_path):
    """Bug: the source mtime dropped from the ledger's fingerprint: an edit that keeps the
    size was skipped as up to date."""
    write, run = campaign
    write("copy")
    assert run() == {"manual": "succeeded"}
    assert run() == {"manual": "skipped"}
    script = tmp_path / "red" / "Imaging" / "scriptForImaging.py"
    before = script.stat()
    script.write_text("# IMAGING\n")  # same size, new content
    os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    assert script.stat().st_size == before.st_size

    assert run() == {"manual": "succeeded"}
    shipped = tmp_path / "out" / PROJECT / MEMBER / "script" / "scriptForImaging.py"
    assert shipped.read_text() == "# IMAGING\n"
