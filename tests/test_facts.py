"""What qa2 reads from the data (qa2core.data.facts, images, casaenv), what it exports
(qa2core.writing.export), the README template, and the promise under all of it: the source is never
written, whatever the command.

Real data: a measurement set from casadata's NGC5921 UVFITS (``ms.fromfits``), CASA images from
casadata's ``test_image`` and ``ia.fromshape``, FITS from ``ia.tofits`` and astropy. Tests that
need casatools are marked ``needs_casa``: without it they are skipped, saying so; ``make test``
installs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.data import casaenv, facts, images
from qa2core.hooks.model import ItemType, Level, SourceItem
from qa2core.planning.scan import scan
from qa2core.testing import sampledata as sd
from qa2core.testing import tree_state, write_tree
from qa2core.writing import export, readme

HAVE_CASA = importlib.util.find_spec("casatools") is not None
needs_casa = pytest.mark.skipif(not HAVE_CASA, reason="needs casatools + casadata for real MS and "
                                "CASA images (pip install 'qa2core[testing]'; make test installs it)")
QA2 = str(Path(sys.executable).with_name("qa2"))
MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
EB = "uid___A002_Xb8e115_X1e3b"


def _item(root: Path, rel: str) -> SourceItem:
    items, _ = scan(root)
    return next(i for i in items if i.relpath == rel)


def _no_casa(monkeypatch) -> None:
    """As on a machine without casatools: every reader degrades to table.info and headers."""
    monkeypatch.setattr(casaenv, "tools", lambda: None)
    monkeypatch.setattr(casaenv, "reason", lambda: "casatools is not installed")
    facts._CACHE.clear()


# ---------------------------------------------------------------------------- start-up


def test_help_loads_no_casa_numpy_or_astropy():
    """What keeps ``qa2 --help`` fast; its time (at most 0.3 s) is checked by ``make bench``
    (bench/run.py, startup), never here: a loaded machine must not fail ``make test``."""
    code = ("import sys\nfrom qa2core.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "heavy = [m for m in ('casatools', 'casaconfig', 'numpy', 'astropy', 'qa2core.data.facts')"
            " if m in sys.modules]\nsys.exit(str(heavy) if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_without_casatools_the_reason_is_known_and_nothing_breaks(tmp_path):
    """A real ImportError (casatools hidden from a fresh interpreter) and casatools failing to
    start (its config package broken): both give None and a reason."""
    for hide, said in (("casatools", "not installed"), ("casaconfig", "failed to start offline")):
        code = (f"import sys; sys.modules[{hide!r}] = None\nfrom qa2core import casaenv\n"
                "print(casaenv.tools() is None, casaenv.reason())")
        env = {k: v for k, v in os.environ.items() if k != "CASASITECONFIG"}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=tmp_path, env=env)
        assert r.stdout.startswith("True") and said in r.stdout, r.stdout + r.stderr
    assert not list(tmp_path.glob("casa-*.log"))


@needs_casa
def test_casa_log_goes_to_scratch_and_severe_lines_come_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logger = casaenv.tools().logger
    previous = logger.logfile()
    with casaenv.session(tmp_path / "scratch") as run:
        assert logger.logfile().startswith(str(run.dir))
        logger.post("a broken table, say", "SEVERE")
        logger.post("just chatter", "WARN")
    assert run.severe == ["CASA: a broken table, say (::casa)"]
    assert logger.logfile() == previous and not run.dir.exists()
    casaenv.relay("x.ms", run.severe)
    assert casaenv.drain() == ["x.ms: CASA: a broken table, say (::casa) [casa.severe]"]
    assert casaenv.drain() == [] and not list(tmp_path.glob("casa-*.log"))


# ---------------------------------------------------------------------------- FITS (astropy)


def test_fits_facts_from_the_header_and_checksums(tmp_path):
    from astropy.io import fits

    path = sd.write_pbcor_fits(tmp_path / "t.image.pbcor.fits", (1, 3, 16, 16))
    with fits.open(path) as hdul:
        hdul.writeto(tmp_path / "sum.image.pbcor.fits", checksum=True)
    got = facts.facts(tmp_path, _item(tmp_path, "t.image.pbcor.fits"))
    assert (got.kind, got.read_with, got.role, got.shape) == ("fits", "astropy", "pbcor", (16, 16, 3, 1))
    assert (got.object, got.unit, got.btype, got.telescope) == ("NGC5921", "Jy/beam", "Intensity", "ALMA")
    assert got.frequency.startswith("FREQ 230.538") and got.frequency.endswith("(3 ch)")
    assert got.checksum == ""  # none written: nothing to verify
    assert facts.facts(tmp_path, _item(tmp_path, "sum.image.pbcor.fits")).checksum == "ok"
    data = bytearray((tmp_path / "sum.image.pbcor.fits").read_bytes())
    data[-7] ^= 0x40
    (tmp_path / "bad.image.pbcor.fits").write_bytes(bytes(data))
    assert facts.facts(tmp_path, _item(tmp_path, "bad.image.pbcor.fits")).checksum.startswith("bad")


def test_image_roles_from_names_and_the_pipeline_type():
    names = {"a.image.pbcor.fits": "pbcor", "a.pb.fits.gz": "pb", "a.flux": "flux",
             "a.mask.tgz": "mask", "a.residual": "residual", "a.model": "model", "a.image": "image",
             "a.pb.tt0.fits": "pb", "m.cube.I.pbcor.fits": "pbcor", "a.sd.im.fits": ""}
    assert {n: images.role_of(n) for n in names} == names
    assert images.role_of("odd_name", "flux") == "pb" and images.role_of("x", "cleanmask") == "mask"


# ---------------------------------------------------------------------------- tables


@needs_casa
def test_ms_facts_through_a_mirror(tmp_path, monkeypatch):
    """Fields and spws of the real NGC5921 MS, the EB from its name (UVFITS data have no
    schedule: msmd.schedule(0) would raise); then schedule and ASDM_EXECBLOCK filled in: EB, SB
    and MOUS from the data. The MS itself is never written, no casa-*.log appears."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "red"
    sd.make_ms(root / f"{EB}.ms")
    before = tree_state(root)
    got = facts.facts(root, _item(root, f"{EB}.ms"))
    assert (got.kind, got.read_with, got.ebs, got.eb_source) == (
        "measurement_set", "casatools", (EB,), "name")
    assert "N5921_2" in got.fields and any(f.startswith("1331+305") for f in got.fields)
    assert got.spws == ("0: 8 ch at 1.41335 GHz",) and got.telescope == "VLA" and not got.notes
    assert tree_state(root) == before and not list(tmp_path.glob("casa-*.log"))

    alma = sd.make_ms(root / "calibrated.ms")
    _stamp_alma(alma, eb="uid://A002/Xc1e2be/X1a3", sb="uid://A002/Xc1e2be/X1a0",
                mous="uid://A001/X1284/X1ef2")
    before = tree_state(root)
    got = facts.facts(root, _item(root, "calibrated.ms"))
    assert (got.ebs, got.eb_source, got.sb, got.mous) == (
        ("uid___A002_Xc1e2be_X1a3",), "ASDM_EXECBLOCK", "uid___A002_Xc1e2be_X1a0",
        "uid___A001_X1284_X1ef2")
    # the README template finds the MOUS there when nothing else names it
    header, unfilled = readme.template_header(root, scan(root)[0], "2017.1.00271.S")
    assert b"Member OUS: uid://A001/X1284/X1ef2\n" in header and "Member OUS" not in unfilled
    assert b"Number of execution blocks: 1\n" in header  # the MS named after EB
    assert tree_state(root) == before and not list(tmp_path.glob("casa-*.log"))


def _stamp_alma(ms: Path, *, eb: str, sb: str, mous: str) -> None:
    """What importasdm leaves in an ALMA MS: the schedule and an ASDM_EXECBLOCK row."""
    from qa2core.testing import casa

    tb = casa.tools().table()
    col = {"valueType": "string", "dataManagerType": "StandardStMan",
           "dataManagerGroup": "StandardStMan", "option": 0, "maxlen": 0, "comment": ""}
    tb.create(str(ms / "ASDM_EXECBLOCK"), {"execBlockUID": dict(col), "sessionReference": dict(col)})
    try:
        tb.addrows(1)
        tb.putcell("execBlockUID", 0, eb)
        tb.putcell("sessionReference", 0, f'<EntityRef entityId="{mous}" partId="X00000000" '
                   'entityTypeName="OUSStatus" documentVersion="1"/>')
    finally:
        tb.close()
    tb.open(str(ms / "OBSERVATION"), nomodify=False)
    try:
        tb.putcell("SCHEDULE", 0, [f"SchedulingBlock {sb}", f"ExecBlock {eb}"])
    finally:
        tb.close()


@needs_casa
def test_image_facts_and_what_is_left_without_casatools(tmp_path, monkeypatch):
    root = tmp_path / "red"
    sd.make_image(root / "x.image")
    sd.make_pb_image(root / "y.pb")
    before = tree_state(root)
    image = facts.facts(root, _item(root, "x.image"))
    assert (image.role, image.shape, image.unit, image.object) == ("image", (32, 32, 8, 1),
                                                                   "JY/BEAM", "NGC5921")
    assert image.beam == "3.1arcsec x 2.4arcsec, pa -12deg" and image.read_with == "casatools"
    assert facts.facts(root, _item(root, "y.pb")).role == "pb"
    assert tree_state(root) == before

    _no_casa(monkeypatch)
    bare = facts.facts(root, _item(root, "x.image"))
    assert (bare.read_with, bare.role, bare.table_type, bare.shape) == (
        "table.info", "image", "Image", ())


# ---------------------------------------------------------------------------- inspect


@needs_casa
def test_inspect_shows_facts_and_fates_of_the_sample(manual_sample, run_qa2, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = tree_state(manual_sample.root)
    r = run_qa2("inspect", manual_sample.root, "--style", "cycle3-nopipe")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("plugin: interferometric (style cycle3-nopipe); facts read with casatools")
    ms = next(x for x in lines if f"{EB}.ms/  measurement_set" in x)
    assert "skip: measurement set: not delivered (noms)" in ms
    assert f"ebs {EB} (from name)" in ms and "N5921_2" in ms and "1331+305" in ms
    pbcor = next(x for x in lines if "calibrated_final_cont.image.pbcor.fits  fits_image" in x)
    assert "copy/link -> product/calibrated_final_cont.image.pbcor.fits [fits_image]" in pbcor
    assert "role pbcor" in pbcor and "unit JY/BEAM" in pbcor
    assert "role flux" in next(x for x in lines if "calibrated_final_cont.flux.fits " in x)
    assert "role mask" in next(x for x in lines if "calibrated_final_cont.mask/" in x)
    assert lines.index("product/") < lines.index("left out (style cycle3-nopipe):")

    out = json.loads(run_qa2("inspect", manual_sample.root, "--json").stdout)
    by = {i["relpath"]: i for i in out["items"]}
    flux = by["Imaging/calibrated_final_cont.flux.fits"]
    assert flux["fate"] == [{"dest": "product/calibrated_final_cont.flux.fits.gz",
                             "action": "gzip", "rule": "fits_image"}]
    assert flux["facts"]["role"] == "flux" and flux["facts"]["shape"] == [32, 32, 8, 1]
    assert tree_state(manual_sample.root) == before and not list(tmp_path.glob("casa-*.log"))


@needs_casa
def test_inspect_starts_casatools_offline_on_its_own(manual_sample, tmp_path):
    """No site config, an empty HOME: qa2 configures casatools itself (offline, log to
    /dev/null): no network, no casa-*.log, nothing in HOME."""
    env = {k: v for k, v in os.environ.items() if k != "CASASITECONFIG"} | {"HOME": str(tmp_path)}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = subprocess.run([QA2, "inspect", manual_sample.root], capture_output=True, text=True,
                       cwd=cwd, env=env)
    assert r.returncode == 0 and "facts read with casatools" in r.stdout, r.stderr
    assert "N5921_2" in r.stdout and not r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd"] and not list(cwd.iterdir())


# ---------------------------------------------------------------------------- exports


@pytest.fixture(scope="module")
def casa_only(tmp_path_factory):
    """A reduction whose products exist only as CASA images: x.image.pbcor, x.pb, x.mask and
    x.image (superseded by its pbcor)."""
    if not HAVE_CASA:
        pytest.skip("needs casatools + casadata (make test installs them)")
    base = tmp_path_factory.mktemp("casa_only")
    root = write_tree(base / "reduction", {f"{EB}.ms.scriptForCalibration.py": "#\n",
                                           "Imaging/scriptForImaging.py": "#\n"})
    sd.make_image(root / "Imaging/x.image.pbcor")
    sd.make_pb_image(root / "Imaging/x.pb")
    sd.make_mask_image(root / "Imaging/x.mask")
    sd.make_image(root / "Imaging/x.image")
    piscript = write_tree(base / "pi", {"scriptForPI.py": sd.pi_script_text()})
    return root, piscript


def _package(root, dst, piscript, mode, **kw):
    return engine.package(root, dst, piscript=piscript, mode=mode, style="cycle3-nopipe", **kw)


def test_export_plan_in_fake_and_dry_run(casa_only, tmp_path):
    root, piscript = casa_only
    before = tree_state(root)
    plan = {f.dest: f for f in _package(root, tmp_path / "2015.1.00123.S", piscript, "copy",
                                        dry_run=True).files}
    assert (plan["product/x.image.pbcor.fits"].action, plan["product/x.pb.fits.gz"].action) == (
        "export", "export")
    assert plan["product/x.mask.tgz"].action == "tgz" and "product/x.image.fits" not in plan
    report = _package(root, tmp_path / "2015.1.00123.S", piscript, "fake")
    assert {f.dest: f.action for f in report.files}["product/x.pb.fits.gz"] == "export"
    member = tmp_path / "2015.1.00123.S" / MEMBER
    assert (member / "product/x.image.pbcor.fits").stat().st_size == 0  # a placeholder
    assert tree_state(root) == before


@pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")
@pytest.mark.parametrize("mode", ["copy", "hard"])
def test_casa_only_products_are_exported_and_packaged_as_fits(casa_only, tmp_path, mode):
    from astropy.io import fits
    from astropy.wcs import WCS

    root, piscript = casa_only
    before = tree_state(root)
    dst = tmp_path / "2015.1.00123.S"
    _package(root, dst, piscript, mode)
    product = dst / MEMBER / "product"
    assert sorted(p.name for p in product.iterdir()) == [
        "x.image.pbcor.fits", "x.mask.tgz", "x.pb.fits.gz"]
    for name, bunit in (("x.image.pbcor.fits", "JY/BEAM"), ("x.pb.fits.gz", "")):
        with fits.open(product / name) as hdul:
            header, data = hdul[0].header, hdul[0].data
            assert data.shape == (1, 8, 32, 32) and header["BITPIX"] == -32
            assert header["BUNIT"].strip() == bunit and header["TELESCOP"] == "ALMA"
            assert list(WCS(header).wcs.ctype) == ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
            assert "CASA" in header["ORIGIN"] and header["DATE"].startswith("20")
    checked = verify(dst)
    assert checked.ok, [f.line() for f in checked.findings]
    assert tree_state(root) == before
    assert not (root / "Imaging/x.image.pbcor.fits").exists()  # never beside the source
    assert not paths_left_in_state(dst)


def paths_left_in_state(dst: Path) -> list[str]:
    """Scratch left in PACKPATH.qa2/ after the run (only the lock and journal may stay)."""
    state = dst.with_name(dst.name + ".qa2")
    return sorted(p.name for p in state.iterdir() if p.name not in ("lock", "journal.json"))


def test_two_exports_give_the_same_bytes(casa_only, tmp_path):
    root, piscript = casa_only
    digests = []
    for n in (1, 2):
        dst = tmp_path / f"run{n}" / "2015.1.00123.S"
        dst.parent.mkdir()
        _package(root, dst, piscript, "copy")
        digests.append((dst / "manifest-sha256.txt").read_text())
    assert digests[0] == digests[1]


def test_without_casatools_the_image_is_a_warning_naming_exportfits(casa_only, tmp_path,
                                                                    monkeypatch):
    root, piscript = casa_only
    _no_casa(monkeypatch)
    report = _package(root, tmp_path / "2015.1.00123.S", piscript, "copy", dry_run=True)
    plan = {f.dest: f.action for f in report.files}
    assert plan["product/x.pb.tgz"] == "tgz" and "product/x.image.pbcor.fits" not in plan
    told = [w for w in report.warnings if "[product.export]" in w]
    assert len(told) == 2 and "exportfits(imagename='x.image.pbcor', fitsimage='x.image.pbcor" \
        ".fits'" in " ".join(told) and "Imaging/x.pb:" in " ".join(told)
    assert any("run exportfits" in why for _, why in report.skipped)


# ---------------------------------------------------------------------------- product rules


def _fits_reduction(base: Path, products: dict[str, object]) -> tuple[Path, Path]:
    root = write_tree(base / "reduction", {f"{EB}.ms.scriptForCalibration.py": "#\n",
                                           "Imaging/scriptForImaging.py": "#\n"})
    for name, make in products.items():
        make(root / "Imaging" / name) if callable(make) else (root / "Imaging" / name).write_bytes(make)
    return root, write_tree(base / "pi", {"scriptForPI.py": sd.pi_script_text()})


def test_verify_reports_a_wrong_pb_partner_broken_fits_and_bad_values(tmp_path, run_qa2):
    def pb_over_one(path):
        sd.write_pb_fits(path)
        from astropy.io import fits

        with fits.open(path, mode="update") as hdul:
            hdul[0].data = hdul[0].data * 2

    def soft_mask(path):
        sd.write_pb_fits(path)  # values between 0 and 1: not a mask

    root, piscript = _fits_reduction(tmp_path, {
        "a.image.pbcor.fits": lambda p: sd.write_pbcor_fits(p, (1, 1, 64, 64)),
        "a.pb.fits": lambda p: sd.write_pb_fits(p, (1, 1, 32, 32)),  # the wrong partner
        "b.image.pbcor.fits": b"SIMPLE  =                    T / broken" + bytes(100),
        "c.image.pbcor.fits": lambda p: sd.write_pbcor_fits(p), "c.pb.fits": pb_over_one,
        "c.mask.fits": soft_mask,
    })
    before = tree_state(root)
    # The run reads the sources it will gzip, so it refuses what verify would: in every mode,
    # the rehearsal included, with the same lines (issue 18: one truth on every path).
    refusals = []
    for mode in ("fake", "copy"):
        dst = tmp_path / mode / "2015.1.00123.S"
        dst.parent.mkdir()
        r = run_qa2("package", root, dst, "--piscript", piscript, "--mode", mode, "--style",
                    "cycle3-nopipe", "--json")
        assert r.exit_code == 1 and not dst.exists()
        refusals.append(json.loads(r.stdout)["errors"])
    assert refusals[0] == refusals[1]
    text = "\n".join(refusals[0])
    assert "a.image.pbcor.fits" in text and "64x64x1x1" in text and "[product.pb_shape]" in text
    assert "c.pb.fits.gz" in text and "[product.pb_values]" in text
    assert "c.mask.fits.gz" in text and "[product.mask_values]" in text
    assert "c.image.pbcor.fits:" not in text
    assert tree_state(root) == before


def test_product_rules_read_streams_and_check_bunit(tmp_path):
    import io

    from qa2core.hooks.model import Mode, PackageView
    from qa2core.planning.styles import resolve_style

    good = sd.write_pbcor_fits(tmp_path / "g.fits").read_bytes()
    odd = good.replace(b"BUNIT   = 'Jy/beam '", b"BUNIT   = 'erg     '")
    content = {"product/g.image.pbcor.fits": good, "product/o.image.pbcor.fits": odd}
    view = PackageView(tuple(content), resolve_style(""), "x", Mode.COPY,
                       open=lambda p: io.BytesIO(content[p]))
    (finding,) = images.product_findings(view)
    assert (finding.level, finding.rule, finding.path) == (Level.WARN, "product.bunit",
                                                           "product/o.image.pbcor.fits")


# ---------------------------------------------------------------------------- README template


def test_readme_template_fills_what_the_input_tells(tmp_path):
    ppr = sd.pipeline_ppr_xml(proposal="2017.1.00271.S", ous="uid___A001_X1284_X1ef2",
                              sb_status="uid___A001_X1284_X1ef3", ebs=("uid___A002_Xc6c0d5_X1e46",),
                              sb_title="Orion_a_06_TM1")
    root = write_tree(tmp_path / "run", {"working/PPR_uid___A001_X1284_X1ef3.xml": ppr,
                                         "working/casa-20171102-102030.log": sd.pipeline_casa_log(
                                             "20171102T102030")})
    header, unfilled = readme.template_header(root, scan(root)[0], "IRAS_delivery")
    text = header.decode()
    assert "Project code: 2017.1.00271.S\n" in text and "Cycle: 5\n" in text
    assert "SB name: Orion_a_06_TM1\n" in text and "Member OUS: uid://A001/X1284/X1ef2\n" in text
    assert "Number of execution blocks: 1\n" in text
    assert "CASA version used for reduction: 4.7.0\n" in text
    assert unfilled == ["PI name", "Project title", "Configuration", "Proposed rms",
                        "Proposed beam size", "QA2 Result",
                        "Total Number of Member SBs in this OUS Group"]
    assert readme.header_project_code(header) == "2017.1.00271.S" and readme.unfilled(header)


@needs_casa
def test_readme_without_readme_option_is_a_template_with_one_warning(manual_sample, tmp_path):
    dst = tmp_path / "2015.1.00123.S"
    report = engine.package(manual_sample.root, dst, piscript=manual_sample.piscript, mode="fake")
    told = [w for w in report.warnings if "readme" in w]
    assert len(told) == 1 and "[readme.template]" in told[0] and "PI name" in told[0]
    text = (dst / MEMBER / "README").read_text()
    for line in ("Project code: 2015.1.00123.S", "Cycle: 3", "Number of execution blocks: 2",
                 "CASA version used for reduction: 4.5.3", "PI name: <fill in>"):
        assert f"\n{line}\n" in text


# ---------------------------------------------------------------------------- the source


@needs_casa
def test_the_source_is_unchanged_by_every_command(manual_sample, run_qa2, tmp_path, monkeypatch):
    """package (every mode, and a dry run), inspect, verify, detect, stage: the source tree's
    bytes, modes and times are as before, and no casa-*.log appears in the working directory."""
    monkeypatch.chdir(tmp_path)
    src, pi = manual_sample.root, manual_sample.piscript
    before = tree_state(src)
    commands = [("detect", src), ("inspect", src), ("inspect", src, "--json"),
                ("package", src, tmp_path / "dry/2015.1.00123.S", "--piscript", pi, "--mode",
                 "copy", "--dry-run")]
    for mode in ("fake", "ticket", "copy", "hard"):
        dst = tmp_path / mode / "2015.1.00123.S"
        commands += [("package", src, dst, "--piscript", pi, "--mode", mode), ("verify", dst)]
    for cmd in commands:
        if cmd[0] == "package":
            Path(cmd[2]).parent.mkdir(parents=True, exist_ok=True)
        r = run_qa2(*cmd)
        assert r.exit_code == 0, (cmd, r.stderr)
        assert tree_state(src) == before, cmd
    run = sd.build_auxproducts_run(tmp_path / "pipe")
    before_run = tree_state(run.root)
    (tmp_path / "staged").mkdir()
    for cmd in (("detect", run.root), ("inspect", run.root),
                ("stage", run.root, tmp_path / "staged" / sd.AUX_PROJECT, "--mode", "copy",
                 "--piscript", pi)):
        r = run_qa2(*cmd)
        assert r.exit_code == 0, (cmd, r.stderr)
    assert tree_state(run.root) == before_run
    assert not list(tmp_path.glob("casa-*.log"))


# ---------------------------------------------------------------------------- helpers' contracts


def test_mirror_links_files_skips_the_lock_and_copies_across_file_systems(tmp_path, monkeypatch):
    table = write_tree(tmp_path / "t.image", {"table.dat": b"d", "table.info": "Type = Image\n",
                                              "table.lock": b"l", "table.f0_TSM0": bytes(64),
                                              "logtable/table.dat": b"x"})
    casaenv.mirror(str(table), str(tmp_path / "m1"), str(tmp_path))
    assert (tmp_path / "m1/table.dat").stat().st_ino == (table / "table.dat").stat().st_ino
    assert not (tmp_path / "m1/table.lock").exists() and (tmp_path / "m1/logtable/table.dat").exists()

    def refuse(*_a, **_k):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(casaenv, "SPARSE_OVER", 16)
    casaenv.mirror(str(table), str(tmp_path / "m2"), str(tmp_path), data=False)
    big = tmp_path / "m2/table.f0_TSM0"
    assert big.stat().st_size == 64 and (tmp_path / "m2/table.dat").read_bytes() == b"d"
    assert big.stat().st_ino != (table / "table.f0_TSM0").stat().st_ino
    assert (table / "table.lock").read_bytes() == b"l"


def test_eb_rule_reads_names_first_and_skips_scripts_only_inputs(tmp_path):
    scripts = (f"a/{EB}.ms.scriptForCalibration.py", "a/uid___A002_X1_X9.ms.scriptForCalibration.py")
    only_scripts = (SourceItem(scripts[0], ItemType.FILE, 1), SourceItem(scripts[1], ItemType.FILE, 1))
    assert facts.ebs_without_data(tmp_path, only_scripts, scripts) == []
    with_raw = (*only_scripts, SourceItem(f"a/{EB}.asdm.sdm", ItemType.ASDM, 1))
    (finding,) = facts.ebs_without_data(tmp_path, with_raw, scripts)
    assert (finding.level, finding.rule, finding.path) == (Level.WARN, "script.eb_data", scripts[1])


def test_export_targets():
    from qa2core.planning.styles import resolve_style

    style = resolve_style("cycle3-nopipe")

    def image(name, table_type="Image"):
        return SourceItem(f"i/{name}", ItemType.TABLE, 1, table_type)

    assert export.target(image("x.image.pbcor"), style) == "x.image.pbcor.fits"
    assert export.target(image("x.pb"), style) == "x.pb.fits.gz"
    assert export.target(image("x.flux"), style) == "x.flux.fits.gz"
    assert export.target(image("x.mask"), style) is None  # masks ship as .tgz (docs/contract.md)
    assert export.target(image("x.residual"), style) is None
    assert export.target(image("x.image", "Measurement Set"), style) is None
    assert export.superseded(image("x.image"), set(), {"x.image.pbcor"})
    assert export.superseded(image("x.image"), {"x.pbcor.fits"}, set())
    assert export.superseded(image("x.image"), set(), {"x.pbcor"})
    assert not export.superseded(image("x.image"), set(), set())
    assert "velocity=False, optical=False, bitpix=-32" in export.exportfits_call("x.pb")
