"""Case 1: qa2 stage / QA_Pipeline_Stager turns a pipeline run into a staged member tree."""

from __future__ import annotations

import json
import os
import shutil
import tarfile

import pytest

from qa2core import OVERRIDE, Claim, engine, hookimpl
from qa2core.errors import Qa2Error, ValidationFailed
from qa2core.testing import tree_state

M4 = "uid___A001_X87c_X69"
EBS4 = ("uid___A002_Xba0af7_X6409", "uid___A002_Xba0af7_X6ac1")

# The staged Cycle-4 member: the delivered tree of docs/domain.md §2.4 before packaging, i.e. PB
# images still uncompressed, no scriptForImaging.py yet, and the pipeline manifest kept for the
# packaging step to decide on (delivered from Cycle 5 on).
STAGED_C4 = {
    "README",
    "calibration/antennapos.csv",
    "calibration/flux.csv",
    f"calibration/{M4}.cont.dat",
    f"calibration/{M4}.session_1.caltables.tgz",
    f"calibration/{M4}.session_2.caltables.tgz",
    *(f"calibration/{eb}{suffix}" for eb in EBS4 for suffix in (
        "_flagtargetstemplate.txt", "_flagtemplate.txt", ".ms.calapply.txt",
        ".ms.flagversions.tgz")),
    "log/casa-20170117-233444.log",
    "log/casa-20170124-142630.log",
    f"log/{M4}.casa_commands.log",
    *(f"product/{M4}.{name}" for name in (
        "J0006-0623_bp.spw17.mfs.I.pbcor.fits", "J0006-0623_bp.spw17.mfs.I.pb.fits",
        "J0139+1753_ph.spw19.mfs.I.pbcor.fits",
        "NGC_628_sci.spw17_19_21_23.cont.I.alpha.error.fits",
        "NGC_628_sci.spw17_19_21_23.cont.I.alpha.fits",
        "NGC_628_sci.spw17_19_21_23.cont.I.pb.tt0.fits",
        "NGC_628_sci.spw17_19_21_23.cont.I.tt0.pbcor.fits",
        "NGC_628_sci.spw17_19_21_23.cont.I.tt1.pbcor.fits",
        "NGC_628_sci.spw17.cube.I.pbcor.fits", "NGC_628_sci.spw17.cube.I.pb.fits")),
    f"qa/{M4}.weblog.tgz",
    "script/casa_piperestorescript.py",
    "script/casa_pipescript.py",
    "script/PPR_uid___A001_X87c_X6a.xml",
    "script/scriptForPI.py",
    f"script/{M4}.pipeline_manifest.xml",
}


def _skips(report) -> dict[str, str]:
    return {source.split("/MOUS_")[-1].split("/", 1)[-1]: reason
            for source, reason in report.skipped}


def test_stage_cycle4_cli_copy(run_qa2, runs, tmp_path, lib):
    run = runs["cycle4"]
    before = tree_state(run.root)
    staged = tmp_path / "2016.1.01435.S"
    result = run_qa2("stage", f"{run.root}/", staged, "--mode", "copy", "--piscript",
                     f"{run.piscript}/", "--pipe-readme", run.readme, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["plugin"] == "pipeline"
    assert lib.member_files(staged) == STAGED_C4
    member = staged / lib.MEMBER
    # the --pipe-readme file unchanged, and no ticket zip for a staged tree
    assert (member / "README").read_bytes() == run.readme.read_bytes()
    assert not (tmp_path / "2016.1.01435.S.ticket.zip").exists()
    # byte-for-byte copies, PB images not compressed while staging
    for name in (f"{M4}.NGC_628_sci.spw17.cube.I.pb.fits", f"{M4}.weblog.tgz"):
        dest = next(member.rglob(name))
        assert dest.read_bytes() == (run.products / name).read_bytes()
    assert (member / "calibration/flux.csv").read_bytes() == (run.working / "flux.csv").read_bytes()
    assert (member / "script/casa_pipescript.py").read_bytes() == \
        (run.products / f"{M4}.casa_pipescript.py").read_bytes()
    assert tree_state(run.root) == before


def test_stage_skips_with_reasons(pm, runs, tmp_path):
    run = runs["cycle4"]
    before = tree_state(run.root)
    report = engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    skips = _skips(report)
    assert "measurement set" in skips[f"working/{EBS4[0]}.ms"]
    assert "raw data" in skips[f"rawdata/{EBS4[0]}"]
    assert "AQUA" in skips[f"products/{M4}.pipeline_aquareport.xml"]
    assert skips[f"products/{M4}.flux.csv"].startswith("duplicate of ")
    assert skips[f"products/{M4}.flux.csv"].endswith("working/flux.csv")
    assert skips[f"products/{M4}.antennapos.csv"].endswith("working/antennapos.csv")
    assert skips["working/cont.dat"].endswith(f"products/{M4}.cont.dat")
    assert skips["working/PPR_uid___A001_X87c_X6a.xml"].endswith("products/PPR_uid___A001_X87c_X6a.xml")
    assert "weblog" in skips["working/pipeline-20170124T142630/html/index.html"]
    assert "CASA image" in skips[f"working/{M4}.s30_0.NGC_628_sci.spw17.cube.I.iter1.pb"]
    assert "working file" in skips["working/ipython-20170117-233444.log"]
    assert not report.unclassified
    assert not [w for w in report.warnings if "product.compress" in w]
    assert tree_state(run.root) == before


def test_real_measurement_set_in_working_is_skipped(pm, runs, tmp_path, lib):
    if not lib.HAVE_CASA:
        pytest.skip("a real MS needs casatools")
    run = runs["cycle4"]
    before = tree_state(run.root)
    ms = run.working / f"{EBS4[0]}.ms"
    assert (ms / "table.dat").is_file() and (ms / "ANTENNA").is_dir()
    report = engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    assert "measurement set" in _skips(report)[f"working/{EBS4[0]}.ms"]
    assert not [f for f in report.files if ".ms/" in f.dest or f.dest.endswith(".ms")]
    assert tree_state(run.root) == before


@pytest.mark.parametrize("mode", ["hard", "fake"])
def test_stage_modes(pm, runs, tmp_path, lib, mode):
    run = runs["cycle4"]
    before = tree_state(run.root)
    staged = tmp_path / "2016.1.01435.S"
    engine.stage(run.root, staged, mode=mode, piscript=run.piscript, pipe_readme=run.readme,
                 plugins=pm)
    assert lib.member_files(staged) == STAGED_C4
    member = staged / lib.MEMBER
    pb = member / f"product/{M4}.NGC_628_sci.spw17.cube.I.pb.fits"
    source = run.products / pb.name
    if mode == "hard":
        assert os.path.samefile(pb, source)
        assert (staged / "manifest-sha256.txt").is_file()
    else:
        assert pb.stat().st_size == 0
        assert (member / "README").read_bytes() == run.readme.read_bytes()
    assert tree_state(run.root) == before


def test_stage_2014_tar_gz_era(pm, runs, tmp_path, lib):
    run = runs["cycle2"]
    before = tree_state(run.root)
    staged = tmp_path / "2012.1.00688.S"
    engine.stage(run.root, staged, piscript=run.piscript, pipe_readme=run.readme, plugins=pm)
    m, eb = run.mous, run.ebs[0]
    assert lib.member_files(staged) == {
        "README", "calibration/flux.csv", f"calibration/{m}.session_1.caltables.tar.gz",
        f"calibration/{eb}.ms.calapply.txt", f"calibration/{eb}.ms.flagversions.tar.gz",
        f"calibration/{eb}_flagtemplate.txt", "log/casapy-20140612-205108.log",
        f"log/{m}.casa_commands.log", f"product/{m}.J1625-2527_ph.spw0.mfs.I.pbcor.fits",
        f"qa/{m}.weblog.tar.gz", "script/PPR_uid___A002_X5ce05d_X18e.xml",
        "script/casa_piperestorescript.py", "script/casa_pipescript.py", "script/scriptForPI.py",
    }
    assert tree_state(run.root) == before


def test_stage_2017_recipe_named_era(pm, runs, tmp_path, lib):
    run = runs["cycle5"]
    before = tree_state(run.root)
    staged = tmp_path / "2017.1.00271.S"
    report = engine.stage(run.root, staged, piscript=run.piscript, plugins=pm)
    m, eb, r = run.mous, run.ebs[0], "hifa_calimage"
    # flux.csv, antennapos.csv and cont.dat ship inside <M>.auxproducts.tgz only (§8.3 rule 13)
    assert lib.member_files(staged) == {
        "README",
        f"calibration/{m}.auxproducts.tgz", f"calibration/{m}.session_1.auxcaltables.tgz",
        f"calibration/{m}.session_1.caltables.tgz", f"calibration/{eb}.ms.auxcalapply.txt",
        f"calibration/{eb}.ms.calapply.txt", f"calibration/{eb}.ms.flagversions.tgz",
        f"calibration/{eb}_flagtemplate.txt", f"calibration/{eb}_flagtsystemplate.txt",
        "log/casa-20171102-102030.log", f"log/{m}.{r}.casa_commands.log",
        f"product/{m}.Orion_sci.spw25.cube.I.mask.fits", f"product/{m}.Orion_sci.spw25.cube.I.pb.fits",
        f"product/{m}.Orion_sci.spw25.cube.I.pbcor.fits", f"qa/{m}.{r}.weblog.tgz",
        "script/PPR_uid___A001_X1284_X1ef3.xml", "script/casa_piperestorescript.py",
        "script/casa_pipescript.py", "script/scriptForPI.py", f"script/{m}.{r}.pipeline_manifest.xml",
    }
    # The README is the (absent) --pipe-readme: empty, as JAO's pkgPipe made it.
    assert (staged / lib.MEMBER / "README").read_bytes() == b""
    assert _skips(report)[f"products/{m}.pprequest.xml"].endswith("working/PPR_uid___A001_X1284_X1ef3.xml")
    assert tree_state(run.root) == before


def test_stage_pprequest_when_working_has_no_ppr(pm, runs, tmp_path, lib):
    run = runs["cycle5_no_working_ppr"]
    before = tree_state(run.root)
    staged = tmp_path / "2017.1.00271.S"
    report = engine.stage(run.root, staged, piscript=run.piscript, plugins=pm)
    assert tree_state(run.root) == before
    files = lib.member_files(staged)
    assert "script/pprequest.xml" in files  # <oussid>.pprequest.xml, prefix stripped
    assert not [f for f in files if "PPR" in f]
    assert any("script.names_v115" in w for w in report.warnings)


def test_stage_sb_level_run(pm, runs, tmp_path, lib):
    run = runs["sb"]
    before = tree_state(run.root)
    staged = tmp_path / "2015.1.00089.S"
    report = engine.stage(run.root, staged, piscript=run.piscript, plugins=pm)
    assert "script/PPR_uid___A001_X2d6_X4b.xml" in lib.member_files(staged)
    assert "casa_piperestorescript.py" in {p.name for p in (staged / lib.MEMBER / "script").iterdir()}
    assert not [w for w in report.warnings if "run.mous" in w]
    assert tree_state(run.root) == before


def test_stage_tp_run(pm, runs, tmp_path, lib):
    run = runs["tp"]
    before = tree_state(run.root)
    staged = tmp_path / "2013.1.00911.S"
    engine.stage(run.root, staged, piscript=run.piscript, plugins=pm)
    files = lib.member_files(staged)
    assert "calibration/jyperk.csv" in files
    assert "script/casa_pipescript.py" in files
    assert not [f for f in files if "restorescript" in f or "scriptForImaging" in f]
    assert tree_state(run.root) == before


def test_qa_pipeline_stager_api(runs, tmp_path, lib):
    from QA2_Packaging_module import QA_Pipeline_Stager

    run = runs["cycle4"]
    before = tree_state(run.root)
    staged = tmp_path / "2016.1.01435.S"
    report = QA_Pipeline_Stager(str(run.root), str(staged), mode="copy", PIscript=str(run.piscript),
                                PIPE_README=str(run.readme))
    assert report.plugin == "pipeline"
    assert lib.member_files(staged) == STAGED_C4
    assert tree_state(run.root) == before


def test_stage_dry_run_writes_nothing(pm, runs, tmp_path):
    run = runs["cycle4"]
    before = tree_state(run.root)
    report = engine.stage(run.root, tmp_path / "S", piscript=run.piscript, dry_run=True, plugins=pm)
    assert report.dry_run and report.files
    assert not (tmp_path / "S").exists()
    assert tree_state(run.root) == before


# ---------------------------------------------------------------------------- broken runs


def _refused(run_qa2, root, tmp_path, piscript) -> str:
    before = tree_state(root)
    result = run_qa2("stage", root, tmp_path / "OUT", "--piscript", piscript)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert not (tmp_path / "OUT").exists()
    assert tree_state(root) == before
    return result.stderr


def test_two_mous_trees_are_refused_naming_both(run_qa2, runs, copy_run, tmp_path):
    run = copy_run(runs["cycle4"])
    other = (run.root / run.tree).parent / "MOUS_uid___A001_X87c_X70"
    shutil.copytree(run.root / run.tree, other)  # a second, complete MOUS tree
    stderr = _refused(run_qa2, run.root, tmp_path, run.piscript)
    assert len(stderr.strip().splitlines()) == 2  # the claim, then one error line
    line = next(li for li in stderr.splitlines() if "run.trees" in li)
    for mous in ("X69", "X70"):
        for area in ("working", "products"):
            assert f"MOUS_uid___A001_X87c_{mous}/{area}/" in line
    # the way out the message suggests: one MOUS directory at a time
    result = run_qa2("stage", other, tmp_path / "ONE", "--piscript", run.piscript)
    assert result.exit_code == 0, result.stderr


def test_no_pipeline_tree_is_refused_naming_what_was_found(run_qa2, pm, runs, copy_run, tmp_path):
    run = copy_run(runs["cycle2"])
    os.rename(run.root / run.tree / "working", run.root / run.tree / "workng")
    os.rename(run.root / run.tree / "products", run.root / run.tree / "working_X5e5")
    with pytest.raises(ValidationFailed, match="refused") as refused:  # detect agrees with stage
        engine.detect(run.root, pm)
    assert refused.value.plugin == "pipeline"
    assert any("[run.trees]" in line for line in refused.value.lines)
    stderr = _refused(run_qa2, run.root, tmp_path, run.piscript)
    line = next(li for li in stderr.splitlines() if "run.trees" in li)
    assert "no working/ or products/" in line
    assert "workng/" in line and "working_X5e5/" in line and "rawdata/" in line


def test_run_without_ppr_is_refused(run_qa2, runs, copy_run, tmp_path):
    run = copy_run(runs["cycle4"])
    for area in (run.products, run.working):
        (area / "PPR_uid___A001_X87c_X6a.xml").unlink()
    stderr = _refused(run_qa2, run.root, tmp_path, run.piscript)
    assert "no PPR" in stderr and "[script.ppr]" in stderr


def test_ppr_without_ous_status_ref_falls_back_to_directory(pm, runs, copy_run, tmp_path, lib):
    run = copy_run(runs["cycle4"])
    xml = lib.ppr_xml(proposal=run.project, ous=None, sb_status="uid___A001_X87c_X6a", ebs=run.ebs)
    for area in (run.products, run.working):
        (area / "PPR_uid___A001_X87c_X6a.xml").write_text(xml)
    before = tree_state(run.root)
    assert "MOUS uid___A001_X87c_X69" in engine.detect(run.root, pm).claim.reason
    report = engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    assert any("script.ppr_ous" in w for w in report.warnings)
    info = [f for f in report.findings if f.rule == "run.mous"]
    assert info and "taken from the directory name MOUS_uid___A001_X87c_X69" in info[0].message
    assert tree_state(run.root) == before


def test_ppr_and_directory_disagree_warns(pm, runs, copy_run, tmp_path, lib):
    run = copy_run(runs["cycle4"])
    xml = lib.ppr_xml(proposal=run.project, ous="uid___A001_X87c_X99", sb_status="uid___A001_X87c_X6a",
                      ebs=run.ebs)
    (run.products / "PPR_uid___A001_X87c_X6a.xml").write_text(xml)
    before = tree_state(run.root)
    report = engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    assert any("[run.mous]" in w and "the PPR wins" in w for w in report.warnings)
    assert tree_state(run.root) == before


def test_run_without_products_is_refused(pm, runs, copy_run, tmp_path):
    run = copy_run(runs["cycle2"])
    shutil.rmtree(run.products)
    before = tree_state(run.root)
    with pytest.raises(ValidationFailed) as err:
        engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    assert tree_state(run.root) == before
    assert not (tmp_path / "S").exists()
    assert any("run.products" in line and "working/" in line for line in err.value.lines)


def test_staging_a_staged_tree_is_refused(run_qa2, pm, runs, tmp_path):
    run = runs["cycle2"]
    before = tree_state(run.root)
    engine.stage(run.root, tmp_path / "STAGED", piscript=run.piscript, plugins=pm)
    assert tree_state(run.root) == before
    stderr = _refused(run_qa2, tmp_path / "STAGED", tmp_path, run.piscript)
    assert "already a staged tree" in stderr


def test_unknown_product_is_reported_not_dropped(pm, runs, copy_run, tmp_path):
    run = copy_run(runs["cycle4"])
    (run.products / f"{M4}.hifa_calimage.timetracker.json").write_text("{}\n")
    (run.root / "pkgPipe.uid___A001_X87c_X69.2017-01-25T10:00:00.log").write_text("staged\n")
    before = tree_state(run.root)
    report = engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    assert {p.rsplit("/", 1)[-1] for p in report.unclassified} == {
        f"{M4}.hifa_calimage.timetracker.json", "pkgPipe.uid___A001_X87c_X69.2017-01-25T10:00:00.log"}
    assert "  not recognised by the pipeline plugin (2):" in report.left_out_lines()
    assert tree_state(run.root) == before


# ---------------------------------------------------------------------------- auxproducts era


def test_auxproducts_wins_over_the_working_copies(run_qa2, runs, tmp_path, lib):
    """2017-05 on: <M>.auxproducts.tgz is what the pipeline exported. The bare working/ copies
    stay out, each with the reason, so that scriptForPI >= 1.23, which untars the tgz inside
    calibration/, finds one of each (docs/domain.md §8.3 rule 13)."""
    run = runs["cycle5"]
    before = tree_state(run.root)
    staged = tmp_path / "2017.1.00271.S"
    result = run_qa2("stage", run.root, staged, "--piscript", run.piscript, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    calibration = {f for f in lib.member_files(staged) if f.startswith("calibration/")}
    assert not [f for f in calibration if f.endswith(("flux.csv", "antennapos.csv", "cont.dat"))]
    with tarfile.open(staged / lib.MEMBER / f"calibration/{run.mous}.auxproducts.tgz") as tar:
        assert {"flux.csv", "antennapos.csv", "cont.dat"} <= set(tar.getnames())
    skipped = {s["source"].rsplit("/MOUS_", 1)[-1].split("/", 1)[-1]: s["reason"]
               for s in report["skipped"]}
    for name in ("flux.csv", "antennapos.csv", "cont.dat"):
        reason = skipped[f"working/{name}"]
        assert reason.startswith(f"{run.mous}.auxproducts.tgz ships instead")
        assert "scriptForPI >= 1.23 untars it inside calibration/" in reason
    # flag templates are no rule-13 file: they still ship bare, for scriptForPI <= 1.15
    assert f"calibration/{run.ebs[0]}_flagtemplate.txt" in calibration
    assert tree_state(run.root) == before
    verified = run_qa2("verify", staged, "--json")
    assert verified.exit_code == 0, verified.stdout
    assert "calibration.unique" not in {f["rule"] for f in json.loads(verified.stdout)["findings"]}


def test_tp_run_with_auxproducts_ships_jyperk_once(pm, runs, tmp_path, lib):
    run = runs["tp2017"]
    before = tree_state(run.root)
    staged = tmp_path / run.project
    report = engine.stage(run.root, staged, piscript=run.piscript, plugins=pm)
    files = lib.member_files(staged)
    assert not [f for f in files if f.endswith("jyperk.csv")]  # it is in the tgz
    assert f"calibration/{run.mous}.auxproducts.tgz" in files
    assert "auxproducts.tgz ships instead" in _skips(report)["working/jyperk.csv"]
    assert not [w for w in report.warnings if "calibration.jyperk" in w]  # the tgz member counts
    assert "script/casa_pipescript.py" in files and not [f for f in files if "restorescript" in f]
    assert tree_state(run.root) == before


# ---------------------------------------------------------------------------- only pipeline runs


class _ManualSite:
    """A site plugin for manual reductions: it packages, and does not say it stages."""

    @hookimpl
    def qa2_detect(self, delivery):
        return Claim(OVERRIDE, "manual reduction (2 *.ms.scriptForCalibration.py)")


def test_stage_refuses_input_won_by_a_plugin_that_does_not_stage(pm, runs, tmp_path):
    run = runs["cycle4"]
    pm.register(_ManualSite(), "manualsite")
    before = tree_state(run.root)
    with pytest.raises(Qa2Error) as err:
        engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    first, *claims = err.value.lines
    assert first == (f"{run.root}: qa2 stage takes pipeline runs; manualsite claims this input "
                     "(manual reduction (2 *.ms.scriptForCalibration.py)) and does not stage: "
                     "package it with qa2 package")
    assert claims[0].startswith("manualsite (score 90)")
    assert claims[1].startswith("pipeline (score 80): pipeline run of MOUS")
    assert err.value.plugin == "manualsite" and err.value.exit_code == 1
    assert not (tmp_path / "S").exists()
    # naming the staging plugin stages it (it claims the run too); naming the other does not
    engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugin="pipeline", plugins=pm)
    assert (tmp_path / "S" / "sg_ouss_id").is_dir()
    with pytest.raises(Qa2Error, match="manualsite claims this input"):
        engine.stage(run.root, tmp_path / "T", piscript=run.piscript, plugin="manualsite",
                     plugins=pm)
    assert tree_state(run.root) == before


def test_qa2_stage_on_a_manual_reduction_is_refused(run_qa2, make_tree, tmp_path):
    pytest.importorskip("qa2_interferometric")
    root = make_tree({
        "Calibration_X1e3b/uid___A002_Xb8e115_X1e3b.ms.scriptForCalibration.py": "es = aU.sfsdr()\n",
        "Imaging/scriptForImaging.py": "tclean()\n",
        "Imaging/calibrated_final_cont.image.pbcor.fits": b"SIMPLE  =                    T",
    })
    before = tree_state(root)
    result = run_qa2("stage", root, tmp_path / "OUT", "--json")
    assert result.exit_code == 1
    line = next(li for li in result.stderr.splitlines() if "qa2 stage takes pipeline runs" in li)
    assert "interferometric claims this input" in line
    assert line.endswith("and does not stage: package it with qa2 package")
    assert json.loads(result.stdout)["plugin"] == "interferometric"
    assert not (tmp_path / "OUT").exists()
    assert tree_state(root) == before
