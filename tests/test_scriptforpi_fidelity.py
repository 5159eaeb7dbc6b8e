"""Fidelity (issue 22): ALMA's real scriptForPI of the era (v1.34, tests/data/scriptforpi/SOURCE.md)
runs to its end on a qa2 package of the sample pipeline run, in today's shape (STYLE), as the PI
gets it: its product and auxiliary tars untarred in one directory, the raw data put in raw/ as
the README says, the script run the way a PI runs it (cwd script/, ``casa --pipeline -c``).

CASA and the ALMA pipeline are not installed: the restore itself (``h_init``, ``hifa_restoredata``,
``h_save``, ``msmd``, ``mstransform``) is stubbed by qa2core.testing.scriptforpi, which records
each call and what the restore would read; the script's own logic (globs, manifest, untarring the
auxproducts, raw/ checks, calibrated/ layout, execfile of the restore script) runs for real.

The package style is the one constant STYLE; every member file is found by globbing, so the test
holds for any style that delivers the same data.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from qa2core import engine
from qa2core.testing import sampledata as sd
from qa2core.testing.scriptforpi import run_scriptforpi
from qa2core.writing import archive

STYLE = "cycle5-pipe"
DATA = Path(__file__).parent / "data" / "scriptforpi"
SCRIPT = DATA / "scriptForPI-v1.34.py"
SCRIPT_SHA256 = "3280166327eba39709cd1f40d251341a9c2354cf8999b2f1750709826eb649d1"
SESSION_TGZ = re.compile(r"\.(session_\w+)\.caltables\.tgz$")

def _uid(sanitized: str) -> str:
    return sanitized.replace("uid___", "uid://", 1).replace("_", "/")


def _one(paths: list[Path], what: str) -> Path:
    assert len(paths) == 1, f"{what}: want one, found {[p.name for p in paths]}"
    return paths[0]


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The sample run, staged, packaged with STYLE, raw data in raw/, scriptForPI run once."""
    base = tmp_path_factory.mktemp("scriptforpi")
    run = sd.build_auxproducts_run(base / "run")
    master = base / "master" / "scriptForPI.py"  # the ARC's --piscript: ALMA's script unchanged
    master.parent.mkdir()
    shutil.copyfile(SCRIPT, master)

    staged = base / "STAGED"
    engine.stage(run.root, staged, piscript=master)
    pack = base / "P" / run.project
    pack.parent.mkdir()
    report = engine.package(staged, pack, style=STYLE, mode="copy", piscript=master,
                            ous_uids=",".join(_uid(u) for u in run.ous))

    # what the PI gets: the tars (product volumes and the auxiliary tar), untarred in one place
    tars = base / "tars"
    tars.mkdir()
    archive.make_tars(pack, out_dir=tars)
    untarred = base / "PI"
    for tar in sorted(tars.glob("*.tar")):
        with tarfile.open(tar) as t:
            t.extractall(untarred, filter="data")
    script = _one(sorted((untarred / run.project).glob("*/*/*/script/*scriptForPI.py")),
                  "member scriptForPI")
    member = script.parent.parent
    packaged = {p.relative_to(member).as_posix() for p in member.rglob("*") if p.is_file()}
    (member / "raw").mkdir()
    for asdm in sorted((run.root / run.tree / "rawdata").iterdir()):  # as the ASDM tars unpack
        shutil.copytree(asdm, member / "raw" / f"{asdm.name}.asdm.sdm")
    result = run_scriptforpi(member, script)
    return SimpleNamespace(run=run, pack=pack, member=member, script=script, report=report,
                           packaged=packaged, result=result)


def _shown(pi: SimpleNamespace) -> str:
    r = pi.result
    return f"rc={r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}\n--- calls\n{r.calls}"


def _package_ebs(member: Path) -> list[str]:
    """The EBs the package's PPR names (<AsdmDiskName>), found as scriptForPI finds the PPR."""
    script = member / "script"
    ppr = sorted(script.glob("*PPR*.xml")) or sorted(script.glob("*cal*pprequest.xml"))
    root = ET.parse(_one(ppr, "PPR")).getroot()
    return [e.text for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "AsdmDiskName"]


def test_the_real_script_is_kept_byte_for_byte_and_shipped_unchanged(pi):
    data = SCRIPT.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCRIPT_SHA256
    assert b"$Id: scriptForPI.py,v 1.34 2022/08/26 19:11:19 dpetry Exp $" in data
    assert SCRIPT_SHA256 in (DATA / "SOURCE.md").read_text()
    assert pi.script.read_bytes() == data


def test_the_readme_says_where_the_raw_data_go(pi):
    readme = _one(sorted(p for p in pi.member.glob("*README*") if p.is_file()), "member README")
    assert "raw/" in readme.read_text()
    assert not [f for f in pi.packaged if f.startswith(("raw/", "calibrated/"))]  # the PI's to add


def test_scriptforpi_runs_to_its_end(pi):
    assert pi.result.finished, _shown(pi)
    assert "using pipeline restore" in pi.result.stdout, _shown(pi)
    calibrated = pi.member / "calibrated"
    for eb in pi.run.ebs:
        assert (calibrated / "rawdata" / eb / "ASDM.xml").is_file()  # the link into raw/ resolves
    assert (calibrated / "products").resolve() == (pi.member / "calibration").resolve()
    assert (calibrated / "working").is_dir()
    assert [c for c, _ in pi.result.calls if c in ("h_init", "hifa_restoredata", "h_save")] == \
        ["h_init", "hifa_restoredata", "h_save"]


def test_it_unpacks_the_auxproducts_into_calibration(pi):
    aux = _one(sorted((pi.member / "calibration").glob("*auxproducts.tgz")), "auxproducts")
    assert f"tar xzf {aux.name}" in [kw["args"][0] for kw in pi.result.called("os.system")], \
        _shown(pi)
    with tarfile.open(aux) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    assert names and all((aux.parent / name).is_file() for name in names), names
    for pattern in ("*flux.csv", "*antennapos.csv", "*cont.dat", "*jyperk*.csv"):  # must be unique
        assert len(list(aux.parent.glob(pattern))) <= 1, pattern


def test_the_restore_gets_the_asdms_and_sessions_the_package_names(pi):
    (restore,) = pi.result.called("hifa_restoredata")
    ebs = _package_ebs(pi.member)
    cal = pi.member / "calibration"
    sessions = sorted({m.group(1) for p in cal.iterdir() if (m := SESSION_TGZ.search(p.name))})
    assert ebs == list(pi.run.ebs)
    assert restore["vis"] == ebs and restore["session"] == sessions
    (found,) = pi.result.called("hifa_restoredata/found")
    assert found["cwd"] == str((pi.member / "calibrated" / "working").resolve())
    assert found["rawdata"] == {eb: True for eb in ebs}
    # with no manifest, restoredata takes these by name from products_dir (-> calibration/)
    for eb in ebs:
        assert {f"{eb}.ms.flagversions.tgz", f"{eb}.ms.calapply.txt"} <= set(found["products"])
    assert [s for s in sessions if not any(p.endswith(f".{s}.caltables.tgz") for p in found["products"])] \
        == []


def test_the_pipeline_manifest_leads_scriptforpi_and_the_restore(pi):
    manifest = _one(sorted((pi.member / "script").glob("*pipeline_manifest.xml")), "manifest")
    named = ET.parse(manifest).find("ous/aux_products_file")
    assert named is not None and named.items()[0][0] == "name"  # v1.34 reads items()[0]
    aux = named.get("name")
    assert (pi.member / "calibration" / aux).is_file()
    assert f"Unpacking {aux} ..." in pi.result.stdout
    (found,) = pi.result.called("hifa_restoredata/found")
    assert manifest.name in found["products"]
    ous = ET.parse(manifest).find("ous")
    files = [e.get("name") for e in ous.iter() if (e.get("name") or "").endswith((".tgz", ".txt"))]
    assert set(files) <= set(found["products"])  # what restoredata shutil.copy()s by name


def test_the_harness_reports_a_run_that_stops(pi, tmp_path):
    """Without raw/ the real script stops, and the run says so (the harness is not vacuous)."""
    member = tmp_path / pi.member.name
    shutil.copytree(pi.member, member, symlinks=True, ignore=shutil.ignore_patterns("raw", "calibrated"))
    stopped = run_scriptforpi(member, next(member.glob("script/*scriptForPI.py")))
    assert not stopped.finished and stopped.returncode == 1
    assert 'ERROR: directory "raw" not present.' in stopped.stderr
    assert stopped.called("hifa_restoredata") == [] and not (member / "calibrated").exists()
