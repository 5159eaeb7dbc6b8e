"""Case 2: qa2 package / QA_Packager on a staged pipeline tree (and the analysis dir made from it)."""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile

import pytest

from qa2core import Level, engine
from qa2core.checks.verify import verify
from qa2core.errors import ValidationFailed
from qa2core.testing import tree_state

# docs/domain.md §2.4, the delivered Cycle-4 member of 2016.1.01435.S, name for name ("… same four
# files for uid___A002_Xba0af7_X6ac1" written out). Two differences, both on purpose:
# * §2.4 shows the PB images uncompressed (X.pb.fits); our contract compresses them in the
#   package (X.pb.fits.gz, docs/domain.md §6 and §9 Q4), so the contract names are asserted here;
# * README and script/scriptForPI.py are the core's; they are in the set because they are there.
DELIVERED_2016_1_01435_S = {
    "README",
    "calibration/antennapos.csv",
    "calibration/flux.csv",
    "calibration/uid___A001_X87c_X69.cont.dat",
    "calibration/uid___A001_X87c_X69.session_1.caltables.tgz",
    "calibration/uid___A001_X87c_X69.session_2.caltables.tgz",
    "calibration/uid___A002_Xba0af7_X6409_flagtargetstemplate.txt",
    "calibration/uid___A002_Xba0af7_X6409_flagtemplate.txt",
    "calibration/uid___A002_Xba0af7_X6409.ms.calapply.txt",
    "calibration/uid___A002_Xba0af7_X6409.ms.flagversions.tgz",
    "calibration/uid___A002_Xba0af7_X6ac1_flagtargetstemplate.txt",
    "calibration/uid___A002_Xba0af7_X6ac1_flagtemplate.txt",
    "calibration/uid___A002_Xba0af7_X6ac1.ms.calapply.txt",
    "calibration/uid___A002_Xba0af7_X6ac1.ms.flagversions.tgz",
    "log/casa-20170117-233444.log",
    "log/casa-20170124-142630.log",
    "log/uid___A001_X87c_X69.casa_commands.log",
    "product/uid___A001_X87c_X69.J0006-0623_bp.spw17.mfs.I.pbcor.fits",
    "product/uid___A001_X87c_X69.J0006-0623_bp.spw17.mfs.I.pb.fits.gz",  # §2.4: .pb.fits
    "product/uid___A001_X87c_X69.J0139+1753_ph.spw19.mfs.I.pbcor.fits",
    "product/uid___A001_X87c_X69.NGC_628_sci.spw17_19_21_23.cont.I.alpha.error.fits",
    "product/uid___A001_X87c_X69.NGC_628_sci.spw17_19_21_23.cont.I.alpha.fits",
    "product/uid___A001_X87c_X69.NGC_628_sci.spw17_19_21_23.cont.I.pb.tt0.fits",
    "product/uid___A001_X87c_X69.NGC_628_sci.spw17_19_21_23.cont.I.tt0.pbcor.fits",
    "product/uid___A001_X87c_X69.NGC_628_sci.spw17_19_21_23.cont.I.tt1.pbcor.fits",
    "product/uid___A001_X87c_X69.NGC_628_sci.spw17.cube.I.pbcor.fits",
    "product/uid___A001_X87c_X69.NGC_628_sci.spw17.cube.I.pb.fits.gz",  # §2.4: .pb.fits
    "qa/uid___A001_X87c_X69.weblog.tgz",
    "script/casa_piperestorescript.py",
    "script/casa_pipescript.py",
    "script/PPR_uid___A001_X87c_X6a.xml",
    "script/scriptForImaging.py",
    "script/scriptForPI.py",
}


@pytest.fixture
def staged(pm, runs, tmp_path):
    """Stage a run (copy) into tmp_path/STAGED and return its path."""
    def stage(name: str):
        run = runs[name]
        engine.stage(run.root, tmp_path / "STAGED", piscript=run.piscript, pipe_readme=run.readme,
                     plugins=pm)
        return tmp_path / "STAGED"

    return stage


def _skips(report) -> dict[str, str]:
    return {source.rsplit("/", 1)[-1]: reason for source, reason in report.skipped}


def test_stage_and_package_cycle4_gives_the_delivered_tree(run_qa2, runs, tmp_path, lib):
    """JAO's pkgPipe: QA_Pipeline_Stager, then QA_Packager(style='cycle4-pipe', mode='copy')."""
    run = runs["cycle4"]
    run_before = tree_state(run.root)
    stager_dir = tmp_path / f"{run.root.name}_{run.mous}"
    result = run_qa2("stage", run.root, stager_dir, "--mode", "copy", "--piscript", run.piscript,
                     "--pipe-readme", run.readme)
    assert result.exit_code == 0, result.stderr
    staged_before = tree_state(stager_dir)
    pack = tmp_path / "2016.1.01435.S"
    result = run_qa2("package", stager_dir, pack, "--readme", stager_dir / lib.MEMBER / "README",
                     "--style", "cycle4-pipe", "--mode", "copy", "--piscript", run.piscript,
                     "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["plugin"] == "pipeline"
    assert lib.member_files(pack) == DELIVERED_2016_1_01435_S
    member = pack / lib.MEMBER
    assert (member / "script/scriptForImaging.py").read_bytes() == b""  # dummy: pipeline imaging
    pb = f"{run.mous}.NGC_628_sci.spw17.cube.I.pb.fits"
    assert gzip.decompress((member / f"product/{pb}.gz").read_bytes()) == (run.products / pb).read_bytes()
    tt0 = f"{run.mous}.NGC_628_sci.spw17_19_21_23.cont.I.pb.tt0.fits"
    assert (member / f"product/{tt0}").read_bytes() == (run.products / tt0).read_bytes()
    readme = (member / "README").read_text()
    assert readme.startswith(run.readme.read_text())
    assert f"{pb}.gz" in readme
    assert (tmp_path / "2016.1.01435.S.ticket.zip").is_file()
    assert tree_state(run.root) == run_before
    assert tree_state(stager_dir) == staged_before


REAL_MEMBER = ("science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/"
               "member.uid___A001_X87c_X69")
UIDS_PRINTED = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"


def test_package_run_directly_in_one_step(pm, runs, tmp_path, lib):
    run = runs["cycle4"]
    before = tree_state(run.root)
    pack = tmp_path / "2016.1.01435.S"
    report = engine.package(run.root, pack, style="cycle4-pipe", mode="copy",
                            piscript=run.piscript, readme_path=run.readme, ous_uids="auto",
                            plugins=pm)
    # --ous-uids auto: the run names its SOUS/GOUS/MOUS, so the package is ingestion-ready.
    assert report.member == REAL_MEMBER
    assert lib.member_files(pack, report.member) == DELIVERED_2016_1_01435_S
    assert tree_state(run.root) == before


def test_analysis_dir_with_manual_imaging(run_qa2, runs, staged, tmp_path, lib):
    """Case 2: the analyst ran scriptForPI (calibrated/, raw/) and imaged by hand."""
    run = runs["cycle2"]
    analysis = staged("cycle2")
    lib.add_analysis(analysis / lib.MEMBER, run.ebs)
    before = tree_state(analysis)
    pack = tmp_path / "2012.1.00688.S"
    result = run_qa2("package", analysis, pack, "--readme", run.readme, "--style", "cycle3-pipe1",
                     "--mode", "copy", "--piscript", run.piscript, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    m, eb = run.mous, run.ebs[0]
    assert lib.member_files(pack) == {
        "README", "calibration/flux.csv", f"calibration/{m}.session_1.caltables.tar.gz",
        f"calibration/{eb}.ms.calapply.txt", f"calibration/{eb}.ms.flagversions.tar.gz",
        f"calibration/{eb}_flagtemplate.txt", "log/casapy-20140612-205108.log",
        f"log/{m}.casa_commands.log", f"product/{m}.J1625-2527_ph.spw0.mfs.I.pbcor.fits",
        "product/IRAS16293_cont.image.pbcor.fits", "product/IRAS16293_cont.flux.fits.gz",
        "product/IRAS16293_cont.mask.tgz", "product/IRAS16293_line.image.pbcor.fits",
        "product/IRAS16293_line.pb.fits.gz", f"qa/{m}.weblog.tar.gz",
        "script/PPR_uid___A002_X5ce05d_X18e.xml", "script/casa_piperestorescript.py",
        "script/casa_pipescript.py", "script/scriptForImaging.py", "script/scriptForPI.py",
    }
    member, cal = pack / lib.MEMBER, analysis / lib.MEMBER / "calibrated"
    assert (member / "script/scriptForImaging.py").read_bytes() == (cal / "scriptForImaging.py").read_bytes()
    assert gzip.decompress((member / "product/IRAS16293_cont.flux.fits.gz").read_bytes()) == \
        (cal / "IRAS16293_cont.flux.fits").read_bytes()
    with tarfile.open(member / "product/IRAS16293_cont.mask.tgz") as tar:
        assert {n.split("/")[0] for n in tar.getnames()} == {"IRAS16293_cont.mask"}
    skips = {s["source"].split("member_ouss_id/")[-1]: s["reason"] for s in report["skipped"]}
    assert "FITS export is packaged" in skips["calibrated/IRAS16293_cont.flux"]
    assert "FITS export is the product" in skips["calibrated/IRAS16293_cont.image"]
    assert "calibrated/" in skips[f"calibrated/{eb}.ms.split.cal"]
    assert "calibrated/" in skips["calibrated/working/casa_pipescript.py"]
    assert "calibrated/" in skips["calibrated/products/flux.csv"]  # the symlink to calibration/
    assert "raw data" in skips[f"raw/{eb}.asdm.sdm"]
    assert "--readme" in skips["README"]
    assert report["unclassified"] == []
    assert tree_state(analysis) == before


def test_empty_script_imaging_script_loses_to_the_analysts(pm, runs, staged, tmp_path, lib):
    run = runs["cycle2"]
    analysis = staged("cycle2")
    lib.add_analysis(analysis / lib.MEMBER, run.ebs)
    (analysis / lib.MEMBER / "script/scriptForImaging.py").write_bytes(b"")
    before = tree_state(analysis)
    report = engine.package(analysis, tmp_path / "P", style="cycle3-pipe1", mode="copy",
                            piscript=run.piscript, plugins=pm)
    assert tree_state(analysis) == before
    reason = next(r for s, r in report.skipped if s.endswith("script/scriptForImaging.py"))
    assert reason.startswith("duplicate of sg_ouss_id/group_ouss_id/member_ouss_id/calibrated/")
    written = (tmp_path / "P" / lib.MEMBER / "script/scriptForImaging.py").read_text()
    assert written.startswith("tclean(")


@pytest.mark.parametrize(("style", "has_antennapos"), [("cycle2-pipe1", False),
                                                        ("cycle3-pipe1", True),
                                                        ("cycle4-pipe", True)])
def test_antennapos_only_for_styles_that_accept_it(pm, runs, staged, tmp_path, lib, style,
                                                   has_antennapos):
    source = staged("cycle4")
    before = tree_state(source)
    report = engine.package(source, tmp_path / style, style=style, mode="copy",
                            piscript=runs["cycle4"].piscript, plugins=pm)
    assert ("calibration/antennapos.csv" in lib.member_files(tmp_path / style)) is has_antennapos
    if not has_antennapos:
        assert "cycle3-pipe1" in _skips(report)["antennapos.csv"]
    assert tree_state(source) == before


def test_manual_style_on_pipeline_input_is_refused(run_qa2, runs, staged, tmp_path):
    source = staged("cycle4")
    before = tree_state(source)
    result = run_qa2("package", source, tmp_path / "2016.1.01435.S", "--style", "cycle2-nopipe",
                     "--mode", "copy", "--piscript", runs["cycle4"].piscript)
    assert result.exit_code == 1
    line = next(li for li in result.stderr.splitlines() if "[style.pipeline]" in li)
    assert "cycle4-pipe" in line and "cycle2-nopipe" in line
    assert not (tmp_path / "2016.1.01435.S").exists()
    assert tree_state(source) == before


def test_no_style_is_allowed(pm, runs, staged, tmp_path, lib):
    source = staged("cycle4")
    before = tree_state(source)
    report = engine.package(source, tmp_path / "P", mode="copy", piscript=runs["cycle4"].piscript,
                            plugins=pm)
    assert tree_state(source) == before
    assert report.style == ""
    files = lib.member_files(tmp_path / "P")
    assert "script/scriptForImaging.py" in files
    assert "calibration/antennapos.csv" not in files  # style "" is not cycle3-pipe1 or later


def test_tp_pipeline_package_has_no_imaging_script(pm, runs, staged, tmp_path, lib):
    source = staged("tp")
    before = tree_state(source)
    report = engine.package(source, tmp_path / "2013.1.00911.S", style="cycle2-pipe1", mode="copy",
                            piscript=runs["tp"].piscript, plugins=pm)
    files = lib.member_files(tmp_path / "2013.1.00911.S")
    assert "calibration/jyperk.csv" in files
    assert "product/uid___A001_X145_X1a2.M100.spw17.cube.I.sd.fits" in files
    assert not [f for f in files if "scriptForImaging" in f]  # no dummy one either
    assert tree_state(source) == before
    # The plugin's TP promise (README: "restore script optional, scriptForPI re-runs the
    # pipescript"; no per-EB flagversions/calapply): it holds on the written package, and the
    # pipescript is then what it insists on.
    pack = tmp_path / "2013.1.00911.S"
    assert "script/casa_pipescript.py" in files
    assert not [f for f in files if f.endswith(("casa_piperestorescript.py", ".calapply.txt"))]
    checked = verify(pack, plugins=pm)
    assert checked.ok and checked.plugin == "pipeline", checked.findings
    (pack / lib.MEMBER / "script/casa_pipescript.py").unlink()
    broken = {f.rule for f in verify(pack, plugins=pm).findings if f.level is Level.ERROR}
    assert "script.calibration" in broken  # scriptForPI would stop: "No calibration script found"
    assert not broken & {"script.restore", "script.imaging", "calibration.flagversions",
                         "calibration.calapply"}  # the interferometric rules never apply to TP
    assert report.plugin == "pipeline"


def test_calibration_only_run_needs_the_analysts_imaging_script(pm, runs, staged, tmp_path):
    source = staged("cycle2")  # hifa_cal: no science images, nobody imaged yet
    before = tree_state(source)
    with pytest.raises(ValidationFailed) as err:
        engine.package(source, tmp_path / "P", style="cycle3-pipe1", mode="fake",
                       piscript=runs["cycle2"].piscript, plugins=pm)
    assert tree_state(source) == before
    assert any("[script.imaging]" in line for line in err.value.lines)
    assert not (tmp_path / "P").exists()


def test_recipe_named_era_packaged(pm, runs, staged, tmp_path, lib):
    run = runs["cycle5"]
    source = staged("cycle5")
    before = tree_state(source)
    report = engine.package(source, tmp_path / "2017.1.00271.S", style="cycle4-pipe", mode="copy",
                            piscript=run.piscript, plugins=pm)
    assert tree_state(source) == before
    files = lib.member_files(tmp_path / "2017.1.00271.S")
    m = run.mous
    image = f"product/{m}.Orion_sci.spw25.cube.I"
    assert {f"{image}.mask.fits.gz", f"{image}.pb.fits.gz", f"{image}.pbcor.fits",
            "script/scriptForImaging.py", f"calibration/{m}.auxproducts.tgz",
            "script/casa_piperestorescript.py"} <= files
    assert not [f for f in files if "manifest" in f]
    assert "Cycle 5" in _skips(report)[f"{m}.hifa_calimage.pipeline_manifest.xml"]


def test_fake_package_of_a_staged_tree(pm, runs, staged, tmp_path, lib):
    source = staged("cycle4")
    before = tree_state(source)
    pack = tmp_path / "2016.1.01435.S"
    engine.package(source, pack, style="cycle4-pipe", mode="fake", plugins=pm)
    assert tree_state(source) == before
    assert lib.member_files(pack) == DELIVERED_2016_1_01435_S
    assert (pack / lib.MEMBER / "qa/uid___A001_X87c_X69.weblog.tgz").stat().st_size == 0
    assert (tmp_path / "2016.1.01435.S.ticket.zip").stat().st_size == 0


def test_qa_packager_api_on_a_staged_tree(runs, staged, tmp_path, lib):
    from QA2_Packaging_module import QA_Packager

    source = staged("cycle4")
    before = tree_state(source)
    pack = tmp_path / "2016.1.01435.S"
    QA_Packager(str(source), str(source / lib.MEMBER / "README"), str(pack),
                PIscript=str(runs["cycle4"].piscript), style="cycle4-pipe", mode="copy")
    assert lib.member_files(pack) == DELIVERED_2016_1_01435_S
    assert tree_state(source) == before


def test_repackaging_a_package_keeps_it(pm, runs, staged, tmp_path, lib):
    """A package qa2 wrote is itself a staged-shaped tree: packaging it again changes nothing."""
    source = staged("cycle4")
    first = tmp_path / "first" / "2016.1.01435.S"
    first.parent.mkdir()
    engine.package(source, first, style="cycle4-pipe", mode="copy", piscript=runs["cycle4"].piscript,
                   plugins=pm)
    before = tree_state(first)
    second = tmp_path / "second" / "2016.1.01435.S"
    second.parent.mkdir()
    engine.package(first, second, style="cycle4-pipe", mode="copy", piscript=runs["cycle4"].piscript,
                   plugins=pm)
    assert lib.member_files(second) == DELIVERED_2016_1_01435_S
    assert tree_state(first) == before


def test_files_put_into_the_staged_tree_are_kept_in_place(pm, runs, staged, tmp_path, lib):
    """A manual polarization calibration or an extra QA report added by the ARC ships as is."""
    source = staged("cycle4")
    member = source / lib.MEMBER
    (member / "script/scriptForPolCalibration.py").write_text("polcal()\n")
    (member / "qa/uid___A001_X87c_X69.qa2_report.pdf").write_bytes(b"%PDF-1.4\n")
    before = tree_state(source)
    engine.package(source, tmp_path / "P", style="cycle4-pipe", mode="copy",
                   piscript=runs["cycle4"].piscript, plugins=pm)
    files = lib.member_files(tmp_path / "P")
    assert files == DELIVERED_2016_1_01435_S | {"script/scriptForPolCalibration.py",
                                                "qa/uid___A001_X87c_X69.qa2_report.pdf"}
    assert tree_state(source) == before


# ---------------------------------------------------------------------------- OUS names


def test_stage_then_package_and_package_directly_name_the_ous_alike(run_qa2, runs, tmp_path, lib):
    """One delivery, one name: placeholders both ways by default (docs/contract.md); the real
    names both ways on request, with the value qa2 stage printed or with --ous-uids auto."""
    run = runs["cycle4"]
    before = tree_state(run.root)
    staged = tmp_path / "STAGED"
    result = run_qa2("stage", run.root, staged, "--piscript", run.piscript, "--json")
    assert result.exit_code == 0, result.stderr
    info = [li for li in result.stderr.splitlines() if "[run.ous_uids]" in li]
    assert len(info) == 1 and info[0].startswith("qa2: info: ")
    assert f"--ous-uids {UIDS_PRINTED}" in info[0]
    findings = json.loads(result.stdout)["findings"]
    assert any(f["rule"] == "run.ous_uids" and f["level"] == "INFO" and UIDS_PRINTED in f["message"]
               for f in findings)

    def package(source, name: str, *options) -> tuple[str, set[str]]:
        pack = tmp_path / name / run.project
        pack.parent.mkdir()
        done = run_qa2("package", source, pack, "--style", "cycle4-pipe", "--mode", "copy",
                       "--piscript", run.piscript, "--readme", run.readme, "--json", *options)
        assert done.exit_code == 0, done.stderr
        member = json.loads(done.stdout)["member"]
        assert [p.name for p in pack.iterdir() if p.is_dir()] == [member.split("/")[0]]
        return member, lib.member_files(pack, member)

    assert package(staged, "staged") == package(run.root, "run") == (
        lib.MEMBER, DELIVERED_2016_1_01435_S)
    assert package(staged, "staged_uids", "--ous-uids", UIDS_PRINTED) == \
        package(run.root, "run_auto", "--ous-uids", "auto") == (REAL_MEMBER, DELIVERED_2016_1_01435_S)
    assert tree_state(run.root) == before


def test_ous_uids_auto_on_a_placeholder_tree_is_refused_saying_why(run_qa2, runs, staged, tmp_path):
    source = staged("cycle4")
    before = tree_state(source)
    result = run_qa2("package", source, tmp_path / "2016.1.01435.S", "--style", "cycle4-pipe",
                     "--mode", "copy", "--piscript", runs["cycle4"].piscript, "--ous-uids", "auto")
    assert result.exit_code == 1
    line = next(li for li in result.stderr.splitlines() if "--ous-uids auto" in li)
    assert line.startswith("qa2: error: --ous-uids auto: pipeline finds no SOUS, GOUS and MOUS UIDs")
    assert "staged pipeline tree of MOUS uid___A001_X87c_X69" in line  # what the input is
    assert "--ous-uids SOUS,GOUS,MOUS" in line and "qa2 stage prints them" in line
    assert not (tmp_path / "2016.1.01435.S").exists()
    assert tree_state(source) == before


# ---------------------------------------------------------------------------- auxproducts era


def test_staged_tree_with_loose_copies_beside_auxproducts_is_refused(run_qa2, pm, runs, tmp_path,
                                                                    lib):
    """A tree staged before auxproducts won (calibration/ with flux.csv and <M>.cont.dat beside
    <M>.auxproducts.tgz): scriptForPI >= 1.23 untars the tgz there, overwriting flux.csv and
    stopping on two *cont.dat. Packaging says so, naming every copy, and writes nothing."""
    run = runs["cycle5"]
    source = tmp_path / "STAGED"
    engine.stage(run.root, source, piscript=run.piscript, plugins=pm)
    member = source / lib.MEMBER
    shutil.copy(run.working / "flux.csv", member / "calibration/flux.csv")
    shutil.copy(run.working / "cont.dat", member / f"calibration/{run.mous}.cont.dat")
    before = tree_state(source)
    pack = tmp_path / run.project
    result = run_qa2("package", source, pack, "--style", "cycle4-pipe", "--mode", "copy",
                     "--piscript", run.piscript)
    assert result.exit_code == 1
    lines = [li for li in result.stderr.splitlines() if "[calibration.unique]" in li]
    aux = f"calibration/{run.mous}.auxproducts.tgz"
    flux = next(li for li in lines if "*flux.csv" in li)
    assert f"calibration/flux.csv, flux.csv in {aux}" in flux and "untars" in flux
    assert "one of them is lost" in flux and "rule 13" in flux
    cont = next(li for li in lines if "*cont.dat" in li)
    assert f"calibration/{run.mous}.cont.dat, cont.dat in {aux}" in cont
    assert "stops its pipeline re-run on more than one *cont.dat" in cont
    assert not [li for li in lines if "antennapos" in li]  # the tgz's one alone
    assert not pack.exists()
    assert tree_state(source) == before
