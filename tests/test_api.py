"""The CASA-session API (``from QA2_Packaging_module import *``): every call on the original
packager's page (/work/shared/original-packager-page.txt: lines 25, 57, 73-78, 94, 109, 117, 121)
works as written, with its paths adapted to real sample inputs, and prints on stderr exactly the
lines ``qa2 package`` / ``qa2 stage`` print for the same run (the CLI's tree listing on stdout
aside). Each test changes into its own directory, as a reducer starts CASA in one, so the page's
relative paths (``./README.header.txt``, ``PIscript="./"``) mean what they mean there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from QA2_Packaging_module import Qa2Error, QA_Packager, QA_Pipeline_Stager
from qa2core.errors import UsageError, ValidationFailed
from qa2core.planning import paths
from qa2core.report import Report
from qa2core.testing import sampledata as sd
from qa2core.testing import tree_state

HAVE_CASA = importlib.util.find_spec("casatools") is not None
needs_casa = pytest.mark.skipif(not HAVE_CASA, reason="real sample data needs casatools")
MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
TP_SB = "SB_uid___A001_X196_X40"  # the page's TP reduction directory
TP_PROJECT = "2015.1.00501.S"  # the page's TP project


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory the reducer started CASA in, with the master scriptForPI.py in it."""
    cwd = tmp_path / "casa-session"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (cwd / "scriptForPI.py").write_text(sd.pi_script_text())
    return cwd


def _remove(pack: str | Path) -> None:
    """Everything a run wrote: PACKPATH, its ticket zip and its state directory."""
    pack = Path(pack)
    shutil.rmtree(pack)
    shutil.rmtree(paths.state_dir(pack), ignore_errors=True)
    paths.ticket_zip(pack).unlink(missing_ok=True)


def _written(report: Report) -> dict[str, Path]:
    """dest -> the file on disk, for every entry of the report."""
    base = Path(report.packpath) / report.member
    return {f.dest: base / f.dest for f in report.files}


def _check_files(report: Report, mode: str) -> dict[str, Path]:
    files = _written(report)
    assert files, "the report lists no file"
    assert all(p.is_file() for p in files.values()), [d for d, p in files.items() if not p.is_file()]
    data = {d: p.stat().st_size for d, p in files.items() if d != "README"}
    if mode == "fake":
        assert set(data.values()) == {0}, "fake mode writes empty placeholders only"
    else:
        assert max(data.values()) > 0
    return files


def same_as_cli(capsys, run_qa2, report: Report, *cli: str) -> list[str]:
    """The API printed nothing on stdout and, on stderr, the very lines the CLI prints for the
    same command line run on the same input (the API's output is removed first)."""
    api = capsys.readouterr()
    assert api.out == ""
    assert api.err, "the API printed nothing"
    _remove(report.packpath)
    result = run_qa2(*cli)
    assert result.exit_code == 0, result.stderr
    assert api.err.splitlines() == result.stderr.splitlines()
    assert result.stdout.startswith(f"{report.member}/\n")  # the CLI's tree listing
    return api.err.splitlines()


# ---------------------------------------------------------------------------- samples


@pytest.fixture
def manual(here: Path, manual_sample: sd.Sample) -> tuple[sd.Sample, str]:
    """Lines 25 and 57: ``/pathToMySB`` is the real manual reduction (an absolute path), the
    README header is in the session directory, ``<yourjaomirror>/science/qa2/`` holds
    scriptForPI.py."""
    shutil.copy(manual_sample.readme_header, here / "README.header.txt")
    mirror = here / "jaomirror" / "science" / "qa2"
    mirror.mkdir(parents=True)
    shutil.copy(manual_sample.piscript, mirror / "scriptForPI.py")
    return manual_sample, f"{here}/jaomirror/science/qa2/"


@pytest.fixture(scope="module")
def tp_reduction(tmp_path_factory: pytest.TempPathFactory) -> sd.Sample:
    if not HAVE_CASA:
        pytest.skip("the real TP reduction needs casatools")
    return sd.build_tp_reduction(tmp_path_factory.mktemp("tp") / TP_SB, project=TP_PROJECT)


# ---------------------------------------------------------------------------- the page's calls


@needs_casa
def test_line_25_fake_packaging_of_a_manual_reduction(manual, capsys, run_qa2):
    sample, mirror = manual
    before = tree_state(sample.root)
    report = QA_Packager(origpath=str(sample.root), readme='./README.header.txt',
                         packpath='./2015.1.00123.S', PIscript=mirror, style='cycle2-nopipe',
                         mode='fake')
    assert isinstance(report, Report) and report.plugin == "interferometric"
    files = _check_files(report, "fake")
    assert "script/scriptForPI.py" in files and Path("2015.1.00123.S.ticket.zip").is_file()
    same_as_cli(capsys, run_qa2, report, "package", sample.root, "./2015.1.00123.S",
                "--readme", "./README.header.txt", "--piscript", mirror,
                "--style", "cycle2-nopipe", "--mode", "fake")
    assert tree_state(sample.root) == before


@needs_casa
def test_line_57_final_packaging_with_hard_links(manual, capsys, run_qa2):
    sample, mirror = manual
    before = tree_state(sample.root)
    report = QA_Packager(origpath=str(sample.root), readme='./README.header.txt',
                         packpath='./2015.1.00123.S', mode='hard', style='cycle2-nopipe',
                         PIscript=mirror)
    files = _check_files(report, "hard")
    script = sample.root / "Imaging" / "scriptForImaging.py"
    assert os.stat(files["script/scriptForImaging.py"]).st_ino == os.stat(script).st_ino
    assert files["script/scriptForPI.py"].read_bytes() == sample.piscript.read_bytes()
    lines = same_as_cli(capsys, run_qa2, report, "package", sample.root, "./2015.1.00123.S",
                        "--readme", "./README.header.txt", "--mode", "hard",
                        "--style", "cycle2-nopipe", "--piscript", mirror)
    assert lines[-2].endswith(f"mode hard, to 2015.1.00123.S/{MEMBER}")  # as the CLI says it
    assert tree_state(sample.root) == before


@pytest.mark.parametrize("mode", ["hard", "copy", "fake", None])
def test_lines_73_to_76_stager_with_keywords(here, capsys, run_qa2, mode):
    """``QA_Pipeline_Stager(pipeline_root=..., staged_root=..., mode=..., PIscript="<path to>")``;
    no mode: 'copy'."""
    run = sd.build_auxproducts_run(here)
    before = tree_state(run.root)
    kwargs = {"mode": mode} if mode else {}
    report = QA_Pipeline_Stager(pipeline_root=run.root.name, staged_root=run.project,
                                PIscript="./scriptForPI.py", **kwargs)
    assert report.mode == (mode or "copy") and report.plugin == "pipeline"
    files = _check_files(report, report.mode)
    assert f"calibration/{run.mous}.auxproducts.tgz" in files
    if report.mode == "hard":
        source = run.products / f"{run.mous}.auxproducts.tgz"
        assert os.stat(files[f"calibration/{run.mous}.auxproducts.tgz"]).st_ino == \
            os.stat(source).st_ino
    assert not Path(f"{run.project}.ticket.zip").exists()  # staging writes no ticket
    same_as_cli(capsys, run_qa2, report, "stage", run.root.name, run.project,
                *(["--mode", mode] if mode else []), "--piscript", "./scriptForPI.py")
    assert tree_state(run.root) == before


def test_line_78_stager_with_positional_arguments(here, capsys, run_qa2):
    run = sd.build_auxproducts_run(here / "scratch")
    run.root.rename(here / "2013.100456.S-2014-08-08T123456")
    report = QA_Pipeline_Stager('2013.100456.S-2014-08-08T123456', '2013.100456.S', mode='copy',
                                PIscript="./")
    files = _check_files(report, "copy")
    assert files["script/scriptForPI.py"].read_text() == sd.pi_script_text()
    assert report.packpath == "2013.100456.S"
    lines = same_as_cli(capsys, run_qa2, report, "stage", "2013.100456.S-2014-08-08T123456",
                        "2013.100456.S", "--mode", "copy", "--piscript", "./")
    assert any("[run.ous_uids]" in line for line in lines)  # how to get the real OUS names


@needs_casa
def test_line_94_case_2_analysis_dir_after_manual_imaging(here, capsys, run_qa2):
    """Case 2: the staged tree came back with the analyst's scriptForPI run and imaging;
    style cycle2-pipe1, PIscript "./" (it overwrites the staged one), mode left at 'fake'."""
    top = sd.build_analysis_tree(here / "analysis")
    (here / "README.header.txt").write_text(sd.analysis_readme_header_text())
    origpath = f"analysis/{sd.ANALYSIS_PROJECT}"
    before = tree_state(top)
    report = QA_Packager(origpath=origpath,
                         packpath=sd.ANALYSIS_PROJECT,
                         readme='README.header.txt',
                         style='cycle2-pipe1',
                         PIscript="./")
    assert report.mode == "fake" and report.plugin == "pipeline"
    files = _check_files(report, "fake")
    assert {"product/IRAS16293_cont.image.pbcor.fits", "product/IRAS16293_cont.mask.tgz",
            "script/scriptForImaging.py", "script/scriptForPI.py"} <= set(files)
    assert not [d for d in files if "calibrated" in d or d.endswith(".ms.split.cal")]
    same_as_cli(capsys, run_qa2, report, "package", origpath, sd.ANALYSIS_PROJECT,
                "--readme", "README.header.txt", "--style", "cycle2-pipe1", "--piscript", "./")
    assert tree_state(top) == before


def test_line_109_manual_tp_without_piscript_uses_the_reductions_own(here, tp_reduction, capsys,
                                                                      run_qa2):
    """No PIscript, mode 'hard': the reduction's own scriptForPI.py ships, with a warning."""
    shutil.copytree(tp_reduction.root, here / TP_SB, symlinks=True)
    shutil.copy(tp_reduction.readme_header, here / "README.header.txt")
    (here / "scriptForPI.py").unlink()  # not asked for: it must not matter
    report = QA_Packager(origpath=TP_SB, readme='./README.header.txt', packpath=f'./{TP_PROJECT}',
                         style='cycle2-nopipe', mode='hard')
    assert report.plugin == "totalpower"
    files = _check_files(report, "hard")
    own = here / TP_SB / "scriptForPI.py"
    assert os.stat(files["script/scriptForPI.py"]).st_ino == os.stat(own).st_ino
    assert {"calibration/jyperk.csv", "product/M100_TP_spw17.sd.im.fits",
            *(f"script/{eb}.ms.scriptForSDCalibration.py" for eb in tp_reduction.ebs)} <= set(files)
    lines = same_as_cli(capsys, run_qa2, report, "package", TP_SB, f"./{TP_PROJECT}",
                        "--readme", "./README.header.txt", "--style", "cycle2-nopipe",
                        "--mode", "hard")
    assert (f"qa2: warning: {TP_SB}/scriptForPI.py: no --piscript given: packaging the "
            "reduction's own scriptForPI.py; check it is the current master copy") in lines


def test_line_117_stage_pipeline_calibrated_tp(here, capsys, run_qa2):
    run = sd.build_tp_pipeline_run(here)
    assert run.root.name == '2013.1.00911.S_2015_08_07T16_10_05.732'
    report = QA_Pipeline_Stager('2013.1.00911.S_2015_08_07T16_10_05.732', '2013.1.00911.S',
                                mode='copy', PIscript="./")
    files = _check_files(report, "copy")
    assert {"calibration/jyperk.csv", "script/scriptForPI.py",
            f"product/{run.mous}.M100.spw17.cube.I.sd.fits"} <= set(files)
    same_as_cli(capsys, run_qa2, report, "stage", '2013.1.00911.S_2015_08_07T16_10_05.732',
                '2013.1.00911.S', "--mode", "copy", "--piscript", "./")


def test_line_121_package_pipeline_calibrated_tp(here, capsys, run_qa2):
    """The staged TP tree as the analyst left it, with a FITS image in calibrated/ (the page's
    note); cycle2-pipe1, mode 'hard', PIscript "./"."""
    sd.build_staged_tp_tree(here / "scratch").rename(here / TP_SB)
    calibrated = here / TP_SB / MEMBER / "calibrated"
    calibrated.mkdir()
    sd.write_tp_image_fits(calibrated / "M100_TP_spw17.sd.im.fits", obj="M100")
    (here / "README.header.txt").write_text(f"Cycle: 3\nProject code: {TP_PROJECT}\n")
    report = QA_Packager(origpath='SB_uid___A001_X196_X40', readme='./README.header.txt',
                         packpath='./2015.1.00501.S', style='cycle2-pipe1', mode='hard',
                         PIscript="./")
    files = _check_files(report, "hard")
    assert os.stat(files["product/M100_TP_spw17.sd.im.fits"]).st_ino == \
        os.stat(calibrated / "M100_TP_spw17.sd.im.fits").st_ino
    assert "calibration/jyperk.csv" in files
    same_as_cli(capsys, run_qa2, report, "package", TP_SB, "./2015.1.00501.S",
                "--readme", "./README.header.txt", "--style", "cycle2-pipe1", "--mode", "hard",
                "--piscript", "./")


# ---------------------------------------------------------------------------- quiet and errors


def test_verbose_false_prints_nothing(here, capsys):
    run = sd.build_tp_pipeline_run(here)
    report = QA_Pipeline_Stager(run.root.name, run.project, mode='copy', PIscript="./",
                                verbose=False)
    assert _written(report)
    report = QA_Packager(origpath=run.project, packpath="./2013.1.00911.S_pack",
                         style="cycle2-pipe1", PIscript="./", verbose=False)
    assert _written(report)["script/scriptForPI.py"].is_file()
    with pytest.raises(Qa2Error):
        QA_Packager(origpath="./nope", packpath="./2013.1.00911.S", verbose=False)
    assert capsys.readouterr() == ("", "")


def test_an_error_raises_with_the_clis_message_and_prints_it(here, capsys, run_qa2):
    with pytest.raises(UsageError) as err:
        QA_Packager(origpath='/pathToMySB', readme='./README.header.txt',
                    packpath='./20XX.1.00XXX.S', style='cycle2-nopipe', mode='fake')
    api = capsys.readouterr()
    cli = run_qa2("package", "/pathToMySB", "./20XX.1.00XXX.S", "--readme", "./README.header.txt",
                  "--style", "cycle2-nopipe", "--mode", "fake")
    assert cli.exit_code == err.value.exit_code == 2
    (line,) = cli.stderr.splitlines()
    assert line == f"qa2: error: {err.value}" == api.err.rstrip("\n")
    assert api.out == ""


def test_a_refusal_raises_with_every_line_the_cli_prints(here, capsys, run_qa2):
    """A rule broken: one ``qa2: error:`` line per rule, from both, and nothing written."""
    sd.build_staged_tp_tree(here)
    Path("P").mkdir()
    with pytest.raises(ValidationFailed) as err:
        QA_Packager(origpath="2013.1.00911.S", packpath="./P/2013.1.00911.S", PIscript="./",
                    style="cycle2-nopipe", mode="copy")
    api = capsys.readouterr()
    cli = run_qa2("package", "2013.1.00911.S", "./P/2013.1.00911.S", "--piscript", "./",
                  "--style", "cycle2-nopipe", "--mode", "copy")
    assert cli.exit_code == err.value.exit_code == 1
    assert api.err.splitlines() == cli.stderr.splitlines()
    errors = [li for li in api.err.splitlines() if li.startswith("qa2: error: ")]
    assert errors == [f"qa2: error: {line}" for line in err.value.lines]
    assert any("[style.pipeline]" in line for line in err.value.lines)
    assert not any(Path("P").iterdir())
