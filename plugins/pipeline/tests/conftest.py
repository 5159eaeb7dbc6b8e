"""Pipeline runs and staged trees built from the real names of docs/domain.md §2.4, §5.1 and §5.2.

Archives are real gzip tars (tarfile), FITS are real (qa2core.testing.sampledata, astropy), the
measurement set and CASA images are real casatools products when casatools is installed (a
minimal casacore table directory otherwise, which the scanner types the same way). Every run is
built once per session; tests must not modify it (they check that with tree_state).
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import tarfile
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


def ppr_xml(*, proposal: str, ous: str | None, sb_status: str, ebs: tuple[str, ...],
            recipe: str = "hifa_calimage", sb_title: str = "NGC_628_a_06_TM1",
            namespace: bool = False, session: str = "SESSION_1") -> str:
    """A PPR shaped like the pipeline's executeppr test files (docs/domain.md §5.1)."""
    def uid(sanitized: str) -> str:
        return sanitized.replace("uid___", "uid://", 1).replace("_", "/")

    xmlns = ' xmlns="Alma/pipelinescience/SciPipeRequest"' if namespace else ""
    ous_ref = (f'            <OUSStatusRef entityId="{uid(ous)}" entityTypeName="OUSStatus" '
               'documentVersion="1"/>\n') if ous else ""
    prefix = "hsd" if recipe.startswith("hsd") else "hifa"
    commands = "".join(f"                    <ProcessingCommand><Command>{c}</Command>"
                       "<ParameterSet/></ProcessingCommand>\n"
                       for c in (f"{prefix}_importdata", f"{prefix}_flagdata", "h_save"))
    asdms = "".join("                            <AsdmIdentifier>\n"
                    f"                                <AsdmRef><ExecBlockId>{uid(eb)}</ExecBlockId>"
                    "</AsdmRef>\n"
                    f"                                <AsdmDiskName>{eb}</AsdmDiskName>\n"
                    "                            </AsdmIdentifier>\n" for eb in ebs)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<SciPipeRequest{xmlns}>\n"
        "    <ProjectSummary>\n"
        f"        <ProposalCode>{proposal}</ProposalCode>\n"
        "        <ProposalTitle>Star formation in nearby galaxies</ProposalTitle>\n"
        "        <PIName>areducer</PIName>\n"
        "        <Observatory>ALMA Joint Observatory</Observatory>\n"
        "        <Telescope>ALMA</Telescope>\n"
        "    </ProjectSummary>\n"
        "    <ProjectStructure>\n"
        "        <AlmaStructure>\n"
        '            <ObsUnitSetRef entityId="uid://A001/X87c/X5c" partId="X1184547697" '
        'entityTypeName="ObsProject" documentVersion="1"/>\n'
        "            <ObsUnitSetType>Member</ObsUnitSetType>\n"
        '            <ProjectStatusRef entityId="uid://A001/X87c/X6b" '
        'entityTypeName="ProjectStatus" documentVersion="1"/>\n'
        f"{ous_ref}"
        "        </AlmaStructure>\n"
        "    </ProjectStructure>\n"
        "    <ProcessingRequests>\n"
        "        <RootDirectory>/lustre/naasc/sciops/comm/rawdata/pipeline/roots</RootDirectory>\n"
        "        <ProcessingRequest>\n"
        "            <ProcessingIntents>\n"
        f"                <Intents><Keyword>{session}</Keyword><Value>{ebs[0] if ebs else ''}"
        "</Value></Intents>\n"
        "            </ProcessingIntents>\n"
        "            <ProcessingProcedure>\n"
        f"                <ProcedureTitle>{recipe}</ProcedureTitle>\n"
        f"{commands}"
        "            </ProcessingProcedure>\n"
        "            <DataSet>\n"
        "                <SchedBlockSet>\n"
        "                    <SchedBlockIdentifier>\n"
        "                        <RelativePath>SOUS/GOUS/MOUS</RelativePath>\n"
        '                        <SchedBlockRef entityId="uid://A001/X87c/X5f"/>\n'
        f'                        <SBStatusRef entityId="{uid(sb_status)}"/>\n'
        f"                        <SBTitle>{sb_title}</SBTitle>\n"
        f"{asdms}"
        "                    </SchedBlockIdentifier>\n"
        "                </SchedBlockSet>\n"
        "            </DataSet>\n"
        "        </ProcessingRequest>\n"
        "    </ProcessingRequests>\n"
        "</SciPipeRequest>\n"
    )


def tgz(members: dict[str, bytes]) -> bytes:
    """A gzip tar in memory, written like the pipeline's tarfile.open(..., 'w:gz')."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1485268000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def weblog_tgz(stamp: str) -> bytes:
    top = f"pipeline-{stamp}/html"
    return tgz({
        f"{top}/index.html": b"<html><head><title>Pipeline weblog</title></head></html>\n",
        f"{top}/t1-1.html": b"<html>Observation summary</html>\n",
        f"{top}/stage1/t2-4m.html": b"<html>hifa_importdata</html>\n",
        f"{top}/stage1/listobs.txt": b"Observer: areducer  Project: uid://A001/X87c/X5c\n",
    })


def caltables_tgz(ebs: tuple[str, ...]) -> bytes:
    return tgz({f"{eb}.ms.hifa_bandpass.s6_3.spw17_19_21_23.channel.solintinf.bcal.tbl/table.dat":
                b"casacore table" for eb in ebs})


def flagversions_tgz(eb: str) -> bytes:
    return tgz({f"{eb}.ms.flagversions/FLAG_VERSION_LIST": b"Pipeline_Final : final flags\n",
                f"{eb}.ms.flagversions/flags.Pipeline_Final/table.dat": b"casacore table"})


def calapply(eb: str) -> str:
    return (f"applycal(vis='{eb}.ms', field='', intent='', spw='17,19,21,23', antenna='', "
            f"gaintable=['{eb}.ms.hifa_bandpass.s6_3.channel.solintinf.bcal.tbl'], "
            "gainfield=[''], spwmap=[[]], interp=['linear,linearflag'], calwt=[False])\n")


def casa_log(stamp: str) -> str:
    return (f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} 23:34:44 INFO ::casa\tCASA Version 4.7.0-REL\n"
            "INFO ::casa\tpipeline recipe hifa_calimage\n")


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


def fits(path: Path) -> Path:
    """A real FITS image of the kind its name says (pbcor, pb, mask, alpha …)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    shape = (1, 4, 32, 32) if ".cube." in name else (1, 1, 32, 32)
    if name.endswith((".pb.fits", ".pb.tt0.fits", ".flux.fits")):
        return sampledata.write_pb_fits(path, shape)
    if name.endswith(".mask.fits"):
        return sampledata.write_mask_fits(path, shape)
    if ".sd." in name:
        return sampledata.write_tp_image_fits(path)
    return sampledata.write_pbcor_fits(path, shape)


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


# 2017-07+ era: recipe-named products, pprequest.xml, auxproducts.tgz, masks, aux calibration.
C5_PROJECT = "2017.1.00271.S"
C5_MOUS = "uid___A001_X1284_X1ef2"
C5_EBS = ("uid___A002_Xc6c0d5_X1e46",)


def build_cycle5_run(base: Path, *, with_working_ppr: bool = True) -> Run:
    root = base / f"{C5_PROJECT}_2017_11_02T10_20_30.123"
    tree = f"SOUS_uid___A001_X1284_X1ef0/GOUS_uid___A001_X1284_X1ef1/MOUS_{C5_MOUS}"
    m, r, eb = C5_MOUS, "hifa_calimage", C5_EBS[0]
    ppr = ppr_xml(proposal=C5_PROJECT, ous=m, sb_status="uid___A001_X1284_X1ef3", ebs=C5_EBS,
                  namespace=True)
    aux = tgz({"flux.csv": b"ms,field\n", "antennapos.csv": b"ms,antenna\n",
               "cont.dat": b"Field: Orion\n", f"{eb}_flagtemplate.txt": b"mode='manual'\n"})
    write(root / tree / "products", {
        f"{m}.pprequest.xml": ppr,
        f"{eb}.ms.flagversions.tgz": flagversions_tgz(eb),
        f"{eb}.ms.calapply.txt": calapply(eb),
        f"{eb}.ms.auxcalapply.txt": calapply(eb),
        f"{m}.session_1.caltables.tgz": caltables_tgz(C5_EBS),
        f"{m}.session_1.auxcaltables.tgz": caltables_tgz(C5_EBS),
        f"{m}.auxproducts.tgz": aux,
        f"{m}.{r}.weblog.tgz": weblog_tgz("20171102T102030"),
        f"{m}.{r}.casa_commands.log": "hifa_importdata()\n",
        f"{m}.{r}.casa_pipescript.py": "h_init()\n",
        f"{m}.{r}.casa_piperestorescript.py": "h_init()\n",
        f"{m}.{r}.pipeline_manifest.xml":
            f"<piperesults><ous name='{m}'><aux_products_file name='{m}.auxproducts.tgz'/>"
            "</ous></piperesults>\n",
        f"{m}.{r}.pipeline_aquareport.xml": "<AquaReport/>\n",
    })
    for name in ("Orion_sci.spw25.cube.I.pbcor.fits", "Orion_sci.spw25.cube.I.pb.fits",
                 "Orion_sci.spw25.cube.I.mask.fits"):
        fits(root / tree / "products" / f"{m}.{name}")
    working = {
        "flux.csv": "ms,field\n", "antennapos.csv": "ms,antenna\n", "cont.dat": "Field: Orion\n",
        f"{eb}_flagtemplate.txt": "mode='manual'\n", f"{eb}_flagtsystemplate.txt": "mode='manual'\n",
        "casa-20171102-102030.log": casa_log("20171102"),
        "pipeline-20171102T102030/html/index.html": "<html/>\n",
    }
    if with_working_ppr:
        working["PPR_uid___A001_X1284_X1ef3.xml"] = ppr
    write(root / tree / "working", working)
    sampledata.write_asdm(root / tree / "rawdata" / eb, eb)
    piscript_dir, _ = _common_inputs(base)
    return Run(root, C5_PROJECT, m, C5_EBS, tree, None, piscript_dir)


# Pipeline-calibrated TP (hsd_calimage), the packager page's own example run name, 2015 .tar.gz.
TP_PROJECT = "2013.1.00911.S"
TP_MOUS = "uid___A001_X145_X1a2"
TP_EBS = ("uid___A002_Xa5df2c_X5e3",)


def build_tp_run(base: Path) -> Run:
    root = base / f"{TP_PROJECT}_2015_08_07T16_10_05.732"
    tree = f"SOUS_uid___A001_X145_X1a0/GOUS_uid___A001_X145_X1a1/MOUS_{TP_MOUS}"
    m, eb = TP_MOUS, TP_EBS[0]
    ppr = ppr_xml(proposal=TP_PROJECT, ous=m, sb_status="uid___A001_X145_X1a3", ebs=TP_EBS,
                  recipe="hsd_calimage", sb_title="M100_a_06_TP")
    write(root / tree / "products", {
        "PPR_uid___A001_X145_X1a3.xml": ppr,
        f"{m}.session_1.caltables.tar.gz": caltables_tgz(TP_EBS),
        f"{eb}.ms.flagversions.tar.gz": flagversions_tgz(eb),
        f"{m}.weblog.tar.gz": weblog_tgz("20150807T161005"),
        f"{m}.casa_commands.log": "hsd_importdata()\n",
        f"{m}.casa_pipescript.py": "h_init()\nhsd_importdata()\n",
        "jyperk.csv": "MS,Antenna,Spwid,Polarization,Factor\n",
    })
    fits(root / tree / "products" / f"{m}.M100.spw17.cube.I.sd.fits")
    write(root / tree / "working", {
        "PPR_uid___A001_X145_X1a3.xml": ppr, "jyperk.csv": "MS,Antenna,Spwid,Polarization,Factor\n",
        "casa-20150807-161005.log": casa_log("20150807"),
        "pipeline-20150807T161005/html/index.html": "<html/>\n",
    })
    piscript_dir, _ = _common_inputs(base)
    return Run(root, TP_PROJECT, m, TP_EBS, tree, None, piscript_dir)


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
    from qa2core.scan import scan
    from qa2core.styles import resolve_style

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
