"""Pipeline runs and staged trees built from the real names of docs/domain.md §2.4, §5.1 and §5.2.

Archives are real gzip tars (tarfile), FITS are real (qa2core.testing.sampledata, astropy), the
measurement set and CASA images are real casatools products when casatools is installed (a
minimal casacore table directory otherwise, which the scanner types the same way). Every run is
built once per session; tests must not modify it (they check that with tree_state).

The file writers (PPR, tgz, weblog …) and the auxproducts run, both TP runs and the staged TP tree
are sample-data builders of qa2core.testing.sampledata; the Cycle-4, Cycle-2 and SB-level runs,
which need a real MS and CASA images, are built here.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from qa2core import Delivery, Mode, PackageOptions, Purpose
from qa2core.testing import sampledata

pytest_plugins = ["qa2core.testing"]

HAVE_CASA = importlib.util.find_spec("casatools") is not None


# ---------------------------------------------------------------------------- file builders


# The file builders live in qa2core.testing.sampledata (pipeline runs section); the short names
# below are what these tests have always called them.
ppr_xml = sampledata.pipeline_ppr_xml
tgz = sampledata.tgz_bytes
weblog_tgz = sampledata.pipeline_weblog_tgz
caltables_tgz = sampledata.pipeline_caltables_tgz
flagversions_tgz = sampledata.pipeline_flagversions_tgz
calapply = sampledata.pipeline_calapply
casa_log = sampledata.pipeline_casa_log


def _minimal_table(path: Path, table_type: str) -> Path:
    path.mkdir(parents=True)
    (path / "table.dat").write_bytes(b"\xbe\xbe\xbe\xbe casacore table")
    (path / "table.info").write_text(f"Type = {table_type}\nSubType = \n")
    (path / "table.f0").write_bytes(bytes(64))
    return path


def measurement_set(path: Path) -> Path:
    return sampledata.make_ms(path) if HAVE_CASA else _minimal_table(path, "Measurement Set")


def casa_image(path: Path, role: str = "image") -> Path:
    """A CASA image directory: role image, pb or mask."""
    if not HAVE_CASA:
        return _minimal_table(path, "Image")
    build = {"image": sampledata.make_image, "pb": sampledata.make_pb_image,
             "mask": sampledata.make_mask_image}[role]
    return build(path)


fits = sampledata.write_pipeline_fits


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


# ---------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    root: Path  # the run directory <proj>_<date> (PIPELINE_ROOT)
    project: str
    mous: str
    ebs: tuple[str, ...]
    tree: str  # relpath of the MOUS (or SB) level dir holding working/ products/ rawdata/
    readme: Path | None  # products/README_JAO, the --pipe-readme of JAO's pkgPipe
    piscript: Path

    @property
    def products(self) -> Path:
        return self.root / self.tree / "products"

    @property
    def working(self) -> Path:
        return self.root / self.tree / "working"


def _common_inputs(base: Path) -> tuple[Path, Path]:
    piscript = base / "qa2" / "scriptForPI.py"
    piscript.parent.mkdir(parents=True, exist_ok=True)
    piscript.write_text(sampledata.pi_script_text())
    return piscript.parent, piscript


# 2016 .tgz era with flux.csv/antennapos.csv: the delivered Cycle-4 tree of docs/domain.md §2.4.
C4_PROJECT = "2016.1.01435.S"
C4_MOUS = "uid___A001_X87c_X69"
C4_EBS = ("uid___A002_Xba0af7_X6409", "uid___A002_Xba0af7_X6ac1")
C4_FITS = (
    "J0006-0623_bp.spw17.mfs.I.pbcor.fits",
    "J0006-0623_bp.spw17.mfs.I.pb.fits",
    "J0139+1753_ph.spw19.mfs.I.pbcor.fits",
    "NGC_628_sci.spw17_19_21_23.cont.I.alpha.error.fits",
    "NGC_628_sci.spw17_19_21_23.cont.I.alpha.fits",
    "NGC_628_sci.spw17_19_21_23.cont.I.pb.tt0.fits",
    "NGC_628_sci.spw17_19_21_23.cont.I.tt0.pbcor.fits",
    "NGC_628_sci.spw17_19_21_23.cont.I.tt1.pbcor.fits",
    "NGC_628_sci.spw17.cube.I.pbcor.fits",
    "NGC_628_sci.spw17.cube.I.pb.fits",
)
C4_LOGS = ("casa-20170117-233444.log", "casa-20170124-142630.log")


def build_cycle4_run(base: Path) -> Run:
    root = base / f"{C4_PROJECT}_2017_01_17T23_25_13.426"
    tree = f"SOUS_uid___A001_X87c_X67/GOUS_uid___A001_X87c_X68/MOUS_{C4_MOUS}"
    ppr_name = "PPR_uid___A001_X87c_X6a.xml"  # the SB-status entity, not the MOUS (§2.4)
    ppr = ppr_xml(proposal=C4_PROJECT, ous=C4_MOUS, sb_status="uid___A001_X87c_X6a", ebs=C4_EBS)
    m = C4_MOUS
    products: dict[str, str | bytes] = {
        ppr_name: ppr,
        f"{m}.session_1.caltables.tgz": caltables_tgz(C4_EBS[:1]),
        f"{m}.session_2.caltables.tgz": caltables_tgz(C4_EBS[1:]),
        f"{m}.weblog.tgz": weblog_tgz("20170124T142630"),
        f"{m}.casa_commands.log": "hifa_importdata(vis=['uid___A002_Xba0af7_X6409'])\n",
        f"{m}.casa_pipescript.py": "__rethrow_casa_exceptions = True\nh_init()\n",
        f"{m}.casa_piperestorescript.py": "h_init()\nhifa_restoredata(vis=[...])\n",
        f"{m}.pipeline_manifest.xml": "<piperesults><ous name='uid___A001_X87c_X69'/></piperesults>\n",
        f"{m}.pipeline_aquareport.xml": "<AquaReport/>\n",
        f"{m}.flux.csv": "ms,field,spw,I,Q,U,V,pix,comment\n",
        f"{m}.antennapos.csv": "ms,antenna,xoffset,yoffset,zoffset,comment\n",
        f"{m}.cont.dat": "Field: NGC_628\n\nSpectralWindow: 17\n230.1~230.5GHz LSRK\n",
        "README_JAO": "Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 4\n"
                      f"Project code: {C4_PROJECT}\n",
    }
    for eb in C4_EBS:
        products[f"{eb}.ms.flagversions.tgz"] = flagversions_tgz(eb)
        products[f"{eb}.ms.calapply.txt"] = calapply(eb)
    working: dict[str, str | bytes] = {
        ppr_name: ppr,
        "flux.csv": "ms,field,spw,I,Q,U,V,pix,comment\nuid___A002_Xba0af7_X6409.ms,0,17,1.2\n",
        "antennapos.csv": "ms,antenna,xoffset,yoffset,zoffset,comment\n",
        "cont.dat": "Field: NGC_628\n",
        "casa_commands.log": "hifa_importdata(vis=['uid___A002_Xba0af7_X6409'])\n",
        "casa_pipescript.py": "h_init()\n",
        "pipeline-20170124T142630/html/index.html": "<html>weblog</html>\n",
        "pipeline-20170124T142630/html/t1-1.html": "<html>summary</html>\n",
        "pipeline-20170124T142630/html/stage1/listobs.txt": "listobs\n",
        "pipeline_procedure_hifa_calimage.xml": "<ProcessingProcedure/>\n",
        "ipython-20170117-233444.log": "# ipython log\n",
        "applycal.last": "vis = 'uid___A002_Xba0af7_X6409.ms'\n",
    }
    for eb in C4_EBS:
        working[f"{eb}_flagtemplate.txt"] = f"mode='manual' scan='1' reason='QA2: {eb}'\n"
        working[f"{eb}_flagtargetstemplate.txt"] = "mode='manual' field='NGC_628'\n"
    for log in C4_LOGS:
        working[log] = casa_log(log[5:13])
    write(root / tree / "products", products)
    write(root / tree / "working", working)
    for name in C4_FITS:
        fits(root / tree / "products" / f"{m}.{name}")
    measurement_set(root / tree / "working" / f"{C4_EBS[0]}.ms")
    casa_image(root / tree / "working" / f"{m}.s30_0.NGC_628_sci.spw17.cube.I.iter1.pb", "pb")
    for eb in C4_EBS:
        sampledata.write_asdm(root / tree / "rawdata" / eb, eb)
    piscript_dir, _ = _common_inputs(base)
    return Run(root, C4_PROJECT, C4_MOUS, C4_EBS, tree, root / tree / "products" / "README_JAO",
               piscript_dir)


# 2014 .tar.gz era, Cycle-1 A002 OUS UIDs (docs/domain.md §5.1), calibration-only recipe: the
# analyst images by hand (Case 2).
C2_PROJECT = "2012.1.00688.S"
C2_MOUS = "uid___A002_X5ce05d_X18d"
C2_EBS = ("uid___A002_X83b3ce_X4d2",)


def build_cycle2_run(base: Path) -> Run:
    root = base / f"{C2_PROJECT}_2014_06_12T20_51_08.130"
    tree = f"SOUS_uid___A002_X5ce05d_X18b/GOUS_uid___A002_X5ce05d_X18c/MOUS_{C2_MOUS}"
    m, eb = C2_MOUS, C2_EBS[0]
    ppr = ppr_xml(proposal=C2_PROJECT, ous=m, sb_status="uid___A002_X5ce05d_X18e", ebs=C2_EBS,
                  recipe="procedure_hifa_cal.xml", sb_title="IRAS_16293_b7")
    write(root / tree / "products", {
        "PPR_uid___A002_X5ce05d_X18e.xml": ppr,
        f"{eb}.ms.flagversions.tar.gz": flagversions_tgz(eb),
        f"{eb}.ms.calapply.txt": calapply(eb),
        f"{m}.session_1.caltables.tar.gz": caltables_tgz(C2_EBS),
        f"{m}.weblog.tar.gz": weblog_tgz("20140612T205108"),
        f"{m}.casa_commands.log": "hifa_importdata(vis=['uid___A002_X83b3ce_X4d2'])\n",
        f"{m}.casa_pipescript.py": "h_init()\n",
        f"{m}.casa_piperestorescript.py": "h_init()\nhifa_restoredata()\n",
    })
    fits(root / tree / "products" / f"{m}.J1625-2527_ph.spw0.mfs.I.pbcor.fits")
    write(root / tree / "working", {
        "PPR_uid___A002_X5ce05d_X18e.xml": ppr,
        "flux.csv": "ms,field,spw,I\n",
        f"{eb}_flagtemplate.txt": "mode='manual'\n",
        "casapy-20140612-205108.log": casa_log("20140612"),
        "pipeline-20140612T205108/html/index.html": "<html/>\n",
    })
    sampledata.write_asdm(root / tree / "rawdata" / eb, eb)
    piscript_dir, _ = _common_inputs(base)
    readme = base / "README_JAO.cycle2"
    readme.write_text("Cycle: 2\nProject code: 2012.1.00688.S\n")
    return Run(root, C2_PROJECT, m, C2_EBS, tree, readme, piscript_dir)


# 2017-07+ era: recipe-named products, pprequest.xml, auxproducts.tgz (with flux.csv, antennapos.csv,
# cont.dat also in working/), masks, aux calibration: a sample-data builder.
C5_PROJECT = sampledata.AUX_PROJECT
C5_MOUS = sampledata.AUX_OUS[2]
C5_EBS = sampledata.AUX_EBS


def _from_sampledata(run: sampledata.PipelineRun, base: Path) -> Run:
    piscript_dir, _ = _common_inputs(base)
    return Run(run.root, run.project, run.mous, run.ebs, run.tree, None, piscript_dir)


def build_cycle5_run(base: Path, *, with_working_ppr: bool = True) -> Run:
    return _from_sampledata(sampledata.build_auxproducts_run(base, with_working_ppr=with_working_ppr),
                            base)


# Pipeline-calibrated TP (hsd_calimage): the 2015 run (the packager page's own example run name,
# .tar.gz, loose jyperk.csv) and a 2017 one (hsd_calimage in the names, jyperk.csv in auxproducts).
def build_tp_run(base: Path, era: str = "2015") -> Run:
    return _from_sampledata(sampledata.build_tp_pipeline_run(base, era=era), base)


def build_sb_run(base: Path) -> Run:
    """SB-level run (SB pipeline, 2015-11 on): MOUS_<uid>/SBS_<uid>/{working,products,rawdata}."""
    run = build_cycle2_run(base / "src")
    project, mous = "2015.1.00089.S", "uid___A001_X2d6_X4a"
    root = base / f"{project}_2015_12_03T04_05_06.789"
    tree = f"SOUS_uid___A001_X2d6_X48/GOUS_uid___A001_X2d6_X49/MOUS_{mous}/SBS_uid___A001_X2d6_X4b"
    shutil.copytree(run.root / run.tree, root / tree, symlinks=True)
    shutil.rmtree(run.root)
    ppr = ppr_xml(proposal=project, ous=mous, sb_status="uid___A001_X2d6_X4b", ebs=run.ebs,
                  recipe="hifa_cal", sb_title="IRAS_16293_b7")
    for area in ("products", "working"):
        (root / tree / area / "PPR_uid___A002_X5ce05d_X18e.xml").unlink()
        (root / tree / area / "PPR_uid___A001_X2d6_X4b.xml").write_text(ppr)
    return Run(root, project, mous, run.ebs, tree, run.readme, run.piscript)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("runs")
    return {
        "cycle4": build_cycle4_run(base / "c4"),
        "cycle2": build_cycle2_run(base / "c2"),
        "cycle5": build_cycle5_run(base / "c5"),
        "cycle5_no_working_ppr": build_cycle5_run(base / "c5b", with_working_ppr=False),
        "tp": build_tp_run(base / "tp"),
        "tp2017": build_tp_run(base / "tp2017", era="2017"),
        "sb": build_sb_run(base / "sb"),
    }


@pytest.fixture(autouse=True)
def _runs_unchanged(runs: dict[str, Run]):
    """Whatever a test does, the session's pipeline runs stay byte-for-byte as built."""
    from qa2core.testing import tree_state  # after pytest_plugins registered the module

    before = {name: tree_state(run.root) for name, run in runs.items()}
    yield
    changed = [name for name, run in runs.items() if tree_state(run.root) != before[name]]
    assert not changed, f"source runs modified: {changed}"


@pytest.fixture
def copy_run(tmp_path: Path) -> Callable[[Run], Run]:
    """A private copy of a run, for tests that break it on purpose."""
    def copy(run: Run) -> Run:
        root = tmp_path / "broken" / run.root.name
        shutil.copytree(run.root, root, symlinks=True)
        return Run(root, run.project, run.mous, run.ebs, run.tree, run.readme, run.piscript)

    return copy


def add_analysis(member: Path, ebs: tuple[str, ...]) -> None:
    """What an analyst adds to a staged member dir (Case 2): raw/ for scriptForPI, and
    calibrated/ with the pipeline restore's leftovers and the manual imaging results."""
    cal = member / "calibrated"
    for eb in ebs:
        sampledata.write_asdm(member / "raw" / f"{eb}.asdm.sdm", eb)
        (cal / "rawdata").mkdir(parents=True, exist_ok=True)
        (cal / "rawdata" / eb).symlink_to(f"../../raw/{eb}.asdm.sdm")
        measurement_set(cal / f"{eb}.ms.split.cal")
    (cal / "products").symlink_to("../calibration")
    write(cal, {
        "working/casa_pipescript.py": "h_init()\nhifa_restoredata()\n",
        "working/casa_commands.log": "hifa_restoredata()\n",
        "working/casa-20171205-101010.log": casa_log("20171205"),
        "working/pipeline-20171205T101010/html/index.html": "<html>restore</html>\n",
        "scriptForImaging.py": "tclean(vis='calibrated_final.ms', imagename='IRAS16293_cont')\n",
        "casa-20171206-090000.log": casa_log("20171206"),
        "tclean.last": "vis = 'calibrated_final.ms'\n",
    })
    for name in ("IRAS16293_cont.image.pbcor.fits", "IRAS16293_cont.flux.fits",
                 "IRAS16293_line.image.pbcor.fits", "IRAS16293_line.pb.fits"):
        fits(cal / name)
    casa_image(cal / "IRAS16293_cont.image", "image")
    casa_image(cal / "IRAS16293_cont.flux", "pb")  # has its FITS twin: not shipped
    casa_image(cal / "IRAS16293_cont.mask", "mask")  # no FITS twin: shipped as .mask.tgz


@pytest.fixture
def pm(qa2_pm):
    """A plugin manager holding the core's rules and this plugin only."""
    from qa2_pipeline import plugin

    qa2_pm.register(plugin, "pipeline")
    return qa2_pm


MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"


def member_files(pack: Path, member_rel: str = MEMBER) -> set[str]:
    """Member-relative names of every file in a package (or staged tree)."""
    member = pack / member_rel
    return {p.relative_to(member).as_posix() for p in member.rglob("*") if p.is_file()}


def deliver(root: Path, style: str = "", purpose: Purpose = Purpose.PACKAGE,
            mode: Mode = Mode.COPY) -> Delivery:
    """The Delivery the core would hand the hooks for ``root`` (scanned by the core's scanner),
    so that hooks can be tested without the engine."""
    from qa2core.planning.scan import scan
    from qa2core.planning.styles import resolve_style

    root = Path(root).resolve()
    items, _ = scan(root)
    return Delivery(root, items, resolve_style(style), PackageOptions(mode=mode, purpose=purpose))


@pytest.fixture(scope="session")
def lib() -> SimpleNamespace:
    """The builders and helpers above, for test modules (importlib mode: no conftest import)."""
    return SimpleNamespace(
        MEMBER=MEMBER, member_files=member_files, add_analysis=add_analysis, ppr_xml=ppr_xml,
        tgz=tgz, weblog_tgz=weblog_tgz, write=write, fits=fits, measurement_set=measurement_set,
        C4_PROJECT=C4_PROJECT, C4_MOUS=C4_MOUS, C4_EBS=C4_EBS, HAVE_CASA=HAVE_CASA,
        deliver=deliver,
    )
