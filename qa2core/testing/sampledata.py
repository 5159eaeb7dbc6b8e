"""Realistic sample data built from real CASA and astropy products.

Used by ``make demo``, ``qa2 selftest`` and the tests. Every MeasurementSet, caltable
and image is written by casatools (via :func:`qa2core.testing.casa.tools`), every FITS file by
CASA's exportfits or astropy; only scripts, logs and reports are plain text templates.

The MeasurementSet is built once per process (``ms.fromfits`` of casadata's NGC5921
UVFITS, trimmed to 8 channels and 3 scans so copies stay ~6 MB) into a temporary cache removed at
exit; callers get independent copies (``shutil.copytree``, never hard links).

Raw data: each ``Calibration_X*`` directory holds its ``<EB>.asdm.sdm`` ASDM, as when a
reducer works next to the imported raw data (the packager must leave it out).
"""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from qa2core.testing import casa

DEFAULT_PROJECT = "2015.1.00123.S"
DEFAULT_EBS = ("uid___A002_Xb8e115_X1e3b", "uid___A002_Xb8e115_X2a41")
CASA_VERSION = "4.5.3"

# NGC5921 channels and scans kept in the cached MS (keeps copies small and solves fast).
_MS_SPW = "0:28~35"
_MS_SCANS = "1~3"  # flux cal, phase cal and first target scan
# Pointing centre of NGC5921 (deg) and CO(2-1) rest frequency (Hz) for the FITS headers.
_RA, _DEC = 230.4866, 5.0700
_RESTFREQ = 230.538e9
_SEED = 5921

_cache_dir: Path | None = None
_cache_lock = threading.RLock()  # builders may nest (pb image -> template image)


@dataclass(frozen=True)
class Sample:
    """A manual reduction directory plus the files the packager takes from outside it."""

    root: Path
    readme_header: Path
    piscript: Path
    ebs: tuple[str, ...]
    project: str


# --------------------------------------------------------------------------- cache


def _cache_root() -> Path:
    global _cache_dir
    if _cache_dir is None or not _cache_dir.is_dir():
        _cache_dir = Path(tempfile.mkdtemp(prefix="qa2-sampledata-"))
        atexit.register(_remove_cache, _cache_dir, os.getpid())
    return _cache_dir


def _remove_cache(path: Path, owner_pid: int) -> None:
    # A forked child must not delete the parent's cache when it exits.
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


def _cached(name: str, build: Callable[[Path], object]) -> Path:
    """Build ``name`` once per process in the cache directory and return its path."""
    with _cache_lock:
        path = _cache_root() / name
        if not path.exists():
            # Build under a scratch name so a failed build never leaves a half cache entry.
            partial = path.with_name(name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            build(partial)
            partial.rename(path)
        return path


def _copy(src: Path, dst: Path) -> Path:
    """Copy a file or table directory; plain copies so nothing shares inodes."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if Path(src).is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


def _demo(*parts: str) -> Path:
    return casa.casadata_path().joinpath("demo", *parts)


# --------------------------------------------------------------------------- MS and caltables


def _build_ms(dest: Path) -> None:
    ms = casa.tools().ms()
    full = dest.with_name(dest.name + ".fromfits")
    try:
        ms.fromfits(str(full), str(_demo("NGC5921.fits")))
        ms.close()
        ms.open(str(full))
        ms.split(outputms=str(dest), spw=_MS_SPW, scan=_MS_SCANS)
    finally:
        ms.done()
        shutil.rmtree(full, ignore_errors=True)


def make_ms(path: Path) -> Path:
    """Copy of a real NGC5921 MeasurementSet (``ms.fromfits`` + 8-channel split)."""
    return _copy(_cached("NGC5921.ms", _build_ms), path)


def _first_antenna(ms_path: Path) -> str:
    tb = casa.tools().table()
    tb.open(str(Path(ms_path) / "ANTENNA"))
    try:
        return str(tb.getcol("NAME")[0])
    finally:
        tb.close()


def _relabel_msname(caltable: Path, ms_path: Path) -> None:
    # Reducers run CASA inside the calibration directory, so MSName is a bare name.
    tb = casa.tools().table()
    tb.open(str(caltable), nomodify=False)
    try:
        tb.putkeyword("MSName", Path(ms_path).name)
    finally:
        tb.close()


def make_caltable(path: Path, ms_path: Path, kind: str = "G") -> Path:
    """Real caltable on ``ms_path``: a ``G``, ``B`` or ``T`` solve, or ``antpos`` (gencal)."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(path)
    cb = casa.tools().calibrater()
    cb.open(str(ms_path), addcorr=False, addmodel=False)
    try:
        if kind == "antpos":
            # Same call gencal makes; offsets (m) for two antennas.
            cb.specifycal(caltable=str(path), caltype="antpos", antenna="2,5",
                          parameter=[0.0012, -0.0008, 0.0005, -0.0003, 0.0011, 0.0002])
        elif kind in ("G", "B", "T"):
            cb.selectvis(field="0")
            cb.setsolve(type=kind, t="inf", table=str(path),
                        refant=_first_antenna(ms_path), minblperant=4)
            cb.solve()
        else:
            raise ValueError(f"unknown caltable kind {kind!r}; use G, B, T or antpos")
    finally:
        cb.close()
        cb.done()
    _relabel_msname(path, ms_path)
    return path


def _save_flag_version(ms_path: Path, name: str, comment: str) -> Path:
    """Write ``<ms>.flagversions`` the way importasdm/flagmanager do."""
    af = casa.tools().agentflagger()
    af.open(str(ms_path))
    try:
        af.saveflagversion(versionname=name, comment=comment, merge="save")
    finally:
        af.done()
    return Path(f"{ms_path}.flagversions")


# --------------------------------------------------------------------------- CASA images


def _set_alma_metadata(ia: Any) -> None:
    csys = ia.coordsys()
    csys.settelescope("ALMA")
    csys.setobserver("areducer")
    ia.setcoordsys(csys.torecord())
    csys.done()


def _set_object_name(image: Path, name: str = "NGC5921", image_type: str = "Intensity") -> None:
    # The image tool has no setter; exportfits reads OBJECT from the imageinfo keyword.
    tb = casa.tools().table()
    tb.open(str(image), nomodify=False)
    try:
        has_info = "imageinfo" in tb.keywordnames()
        info = tb.getkeyword("imageinfo") if has_info else {"imagetype": image_type}
        info["objectname"] = name
        tb.putkeyword("imageinfo", info)
    finally:
        tb.close()


def _build_template_image(dest: Path) -> None:
    """casadata's test_image (RA/DEC/FREQ) plus a Stokes axis, stamped as an ALMA image."""
    src = casa.tools().image()
    src.open(str(_demo("Images", "test_image")))
    try:
        img = src.adddegaxes(outfile=str(dest), stokes="I")
    finally:
        src.done()
    try:
        _set_alma_metadata(img)
        img.setrestoringbeam(major="3.1arcsec", minor="2.4arcsec", pa="-12deg")
    finally:
        img.done()
    _set_object_name(dest)


def _template_image() -> Path:
    return _cached("template.image", _build_template_image)


def make_image(path: Path) -> Path:
    """Real CASA image: casadata's test_image with a Stokes axis, restamped as ALMA."""
    return _copy(_template_image(), path)


def _image_from_pixels(path: Path, pixels_for: Callable[[tuple[int, ...]], Any],
                       image_type: str) -> Path:
    """New image on the template grid with pixels computed from its shape."""
    src = casa.tools().image()
    src.open(str(_template_image()))
    shape = [int(n) for n in src.shape()]
    csys = src.coordsys().torecord()
    src.done()
    ia = casa.tools().image()
    ia.fromshape(outfile=str(path), shape=shape, csys=csys, overwrite=False)
    try:
        ia.putchunk(pixels_for(tuple(shape)))
        ia.setbrightnessunit("")
    finally:
        ia.done()
    _set_object_name(path, image_type=image_type)
    return Path(path)


def _radius2(shape: tuple[int, ...]) -> Any:
    """Squared distance (pixels) from the image centre, broadcast over the other axes."""
    import numpy as np

    y, x = np.indices(shape[:2], dtype=np.float64)
    r2 = (y - (shape[0] - 1) / 2) ** 2 + (x - (shape[1] - 1) / 2) ** 2
    return r2.reshape(shape[:2] + (1,) * (len(shape) - 2))


def _gaussian_pb(shape: tuple[int, ...], fwhm_fraction: float = 1.1) -> Any:
    import numpy as np

    fwhm = fwhm_fraction * min(shape[:2])
    pb = np.exp(-4.0 * np.log(2.0) * _radius2(shape) / fwhm**2)
    return np.broadcast_to(pb, shape).astype(np.float32)


def _disk_mask(shape: tuple[int, ...], radius_fraction: float = 0.25) -> Any:
    import numpy as np

    inside = _radius2(shape) <= (radius_fraction * min(shape[:2])) ** 2
    return np.broadcast_to(inside, shape).astype(np.float32)


def make_pb_image(path: Path) -> Path:
    """Real CASA primary-beam image (Gaussian, peak 1) on the make_image grid."""
    return _image_from_pixels(path, _gaussian_pb, "Primary Beam")


def make_mask_image(path: Path) -> Path:
    """Real CASA clean-mask image (0/1 disk) on the make_image grid."""
    return _image_from_pixels(path, _disk_mask, "Intensity")


def export_fits(image_path: Path, fits_path: Path) -> Path:
    """exportfits with the parameters the ALMA scripts use."""
    ia = casa.tools().image()
    ia.open(str(image_path))
    try:
        ia.tofits(outfile=str(fits_path), velocity=False, optical=False, bitpix=-32,
                  stokeslast=True)
    finally:
        ia.done()
    return Path(fits_path)


def _export_pbcor_fits(image: Path, pb: Path, fits_path: Path) -> Path:
    """impbcor equivalent (image / pb) exported to FITS; the CASA pbcor image is dropped."""
    with tempfile.TemporaryDirectory(prefix="qa2-pbcor-") as tmp:
        pbcor = _copy(image, Path(tmp) / "pbcor.image")
        ia = casa.tools().image()
        try:
            ia.open(str(pb))
            beam = ia.getchunk()
            ia.close()
            ia.open(str(pbcor))
            ia.putchunk(ia.getchunk() / beam)
        finally:
            ia.done()
        return export_fits(pbcor, fits_path)


# --------------------------------------------------------------------------- astropy FITS


def _fits_header(shape: tuple[int, ...], bunit: str, obj: str, *, cell_arcsec: float,
                 beam_arcsec: float | None, chan_hz: float) -> Any:
    """Header of a CASA-exported RA/DEC/FREQ/STOKES image (numpy shape: S, F, Y, X)."""
    from astropy.io import fits

    _, _, ny, nx = shape
    cards: list[tuple[str, Any]] = [("BSCALE", 1.0), ("BZERO", 0.0)]
    if beam_arcsec is not None:
        cards += [("BMAJ", beam_arcsec / 3600), ("BMIN", 0.8 * beam_arcsec / 3600),
                  ("BPA", -12.0)]
    cards += [
        ("BTYPE", "Intensity"), ("OBJECT", obj), ("BUNIT", bunit),
        ("RADESYS", "ICRS"), ("LONPOLE", 180.0), ("LATPOLE", _DEC),
        ("CTYPE1", "RA---SIN"), ("CRVAL1", _RA), ("CDELT1", -cell_arcsec / 3600),
        ("CRPIX1", nx // 2 + 1.0), ("CUNIT1", "deg"),
        ("CTYPE2", "DEC--SIN"), ("CRVAL2", _DEC), ("CDELT2", cell_arcsec / 3600),
        ("CRPIX2", ny // 2 + 1.0), ("CUNIT2", "deg"),
        ("CTYPE3", "FREQ"), ("CRVAL3", _RESTFREQ), ("CDELT3", chan_hz),
        ("CRPIX3", 1.0), ("CUNIT3", "Hz"),
        ("CTYPE4", "STOKES"), ("CRVAL4", 1.0), ("CDELT4", 1.0), ("CRPIX4", 1.0),
        ("CUNIT4", ""), ("PV2_1", 0.0), ("PV2_2", 0.0), ("RESTFRQ", _RESTFREQ),
        ("SPECSYS", "LSRK"), ("ALTRVAL", 0.0), ("ALTRPIX", 1.0), ("VELREF", 257),
        ("TELESCOP", "ALMA"), ("OBSERVER", "areducer"), ("DATE-OBS", "2016-04-18T10:20:31.104"),
        ("TIMESYS", "UTC"), ("OBSRA", _RA), ("OBSDEC", _DEC),
        ("OBSGEO-X", 2225142.18), ("OBSGEO-Y", -5440307.37), ("OBSGEO-Z", -2481029.85),
        ("DATE", "2016-04-19T09:41:12.000"), ("ORIGIN", f"CASA {CASA_VERSION}-REL (r36115)"),
    ]
    header = fits.Header()
    for key, value in cards:
        header[key] = value
    return header


def _write_fits(path: Path, data: Any, header: Any) -> Path:
    from astropy.io import fits

    fits.PrimaryHDU(data=data.astype("float32"), header=header).writeto(path)
    return Path(path)


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise ValueError(f"shape must be (stokes, freq, y, x), got {shape}")
    return (int(shape[0]), int(shape[1]), int(shape[2]), int(shape[3]))


def _sky(shape: tuple[int, ...], peak: float, noise: float, seed: int) -> Any:
    """Seeded noise plus a compact Gaussian source at the phase centre."""
    import numpy as np

    rng = np.random.default_rng(seed)
    _, _, ny, nx = shape
    source = peak * np.exp(-_radius2((ny, nx)) / (2 * (0.06 * min(ny, nx)) ** 2))
    return source[None, None] + rng.normal(0.0, noise, shape)


def _pb_cube(shape: tuple[int, ...]) -> Any:
    """Gaussian PB blanked to NaN below 0.2, as tclean's exported .pb.fits."""
    import numpy as np

    _, _, ny, nx = shape
    pb = np.broadcast_to(_gaussian_pb((ny, nx), 0.6)[None, None], shape).copy()
    pb[pb < 0.2] = np.nan
    return pb


def write_pb_fits(path: Path, shape: tuple[int, ...] = (1, 1, 64, 64),
                  obj: str = "NGC5921") -> Path:
    """Primary beam FITS (Gaussian, NaN below 0.2)."""
    shape = _check_shape(shape)
    header = _fits_header(shape, "", obj, cell_arcsec=0.2, beam_arcsec=None, chan_hz=488281.25)
    return _write_fits(path, _pb_cube(shape), header)


def write_pbcor_fits(path: Path, shape: tuple[int, ...] = (1, 1, 64, 64),
                     obj: str = "NGC5921") -> Path:
    """Primary-beam-corrected image FITS (Jy/beam, NaN where the PB is below 0.2)."""
    shape = _check_shape(shape)
    header = _fits_header(shape, "Jy/beam", obj, cell_arcsec=0.2, beam_arcsec=1.2,
                          chan_hz=488281.25)
    return _write_fits(path, _sky(shape, 0.05, 0.001, _SEED) / _pb_cube(shape), header)


def write_mask_fits(path: Path, shape: tuple[int, ...] = (1, 1, 64, 64),
                    obj: str = "NGC5921") -> Path:
    """Clean mask FITS (0/1 disk)."""
    shape = _check_shape(shape)
    header = _fits_header(shape, "", obj, cell_arcsec=0.2, beam_arcsec=None, chan_hz=488281.25)
    import numpy as np

    mask = np.broadcast_to(_disk_mask(shape[2:])[None, None], shape)
    return _write_fits(path, mask, header)


def write_tp_image_fits(path: Path, shape: tuple[int, ...] = (1, 8, 24, 24),
                        obj: str = "NGC5921") -> Path:
    """Total-power (sdimaging-like) cube: coarse grid, ~60 arcsec beam, Jy/beam."""
    shape = _check_shape(shape)
    header = _fits_header(shape, "Jy/beam", obj, cell_arcsec=9.0, beam_arcsec=28.0,
                          chan_hz=1953125.0)
    header["INSTRUME"] = "ALMA-TP"
    header["OBSERVER"] = "areducer"
    header["ORIGIN"] = f"CASA {CASA_VERSION}-REL (r36115) sdimaging"
    header.add_history("sdimaging: gridfunction='SF', convsupport=6, ephemsrcname=''")
    return _write_fits(path, _sky(shape, 1.5, 0.02, _SEED + 1), header)


# --------------------------------------------------------------------------- ASDM and PNG


def write_asdm(path: Path, eb_uid: str) -> Path:
    """Tiny ASDM-like directory (``<EB>.asdm.sdm``) naming ``eb_uid``."""
    path = Path(path)
    uid = eb_uid.replace("___", "://").replace("_", "/")
    (path / "ASDMBinary").mkdir(parents=True)
    (path / "ASDM.xml").write_text(
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<ASDM xmlns="http://Alma/XASDM/ASDM" schemaVersion="3">\n'
        f'  <Entity entityId="{uid}" entityIdEncrypted="na" entityTypeName="ASDM"/>\n'
        "  <TimeOfCreation>2016-04-18T10:21:04.000</TimeOfCreation>\n"
        "  <Table><Name>Main</Name><NumberRows>2</NumberRows></Table>\n"
        "  <Table><Name>ExecBlock</Name><NumberRows>1</NumberRows></Table>\n"
        "</ASDM>\n")
    (path / "ExecBlock.xml").write_text(
        f'<ExecBlockTable><row><execBlockUID><EntityRef entityId="{uid}"/></execBlockUID>'
        "<configName>C36-2</configName><telescopeName>ALMA</telescopeName></row>"
        "</ExecBlockTable>\n")
    (path / "Main.xml").write_text(
        "<MainTable><row><numAntenna>28</numAntenna></row></MainTable>\n")
    (path / "ASDMBinary" / f"{eb_uid}_X1").write_bytes(b"--MIME_boundary\r\n" + bytes(256))
    return path


def _png_bytes(width: int, height: int, rgb: bytes) -> bytes:
    """Minimal RGB8 PNG encoder (stdlib only)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    stride = 3 * width
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def write_plot_png(path: Path, seed: int = 0, size: tuple[int, int] = (160, 120)) -> Path:
    """Small deterministic scatter-plot PNG (white page, axes, blue points)."""
    import numpy as np

    width, height = size
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    img[height - 12, 10:] = 0  # x axis
    img[: height - 11, 10] = 0  # y axis
    rng = np.random.default_rng(seed)
    xs = np.linspace(12, width - 3, 120).astype(int)
    ys = (height / 2 + height / 4 * np.sin(xs / 17.0 + seed) + rng.normal(0, 3, xs.size))
    ys = np.clip(ys.astype(int), 1, height - 14)
    img[ys, xs] = (31, 119, 180)
    path = Path(path)
    path.write_bytes(_png_bytes(width, height, img.tobytes()))
    return path


# --------------------------------------------------------------------------- text templates


def calibration_dir_name(eb_uid: str) -> str:
    """``uid___A002_Xb8e115_X1e3b`` -> ``Calibration_X1e3b``."""
    return "Calibration_" + eb_uid.rsplit("_", 1)[-1]


_CAL_STEPS = (
    "Import of the ASDM", "Fix of SYSCAL table times", "listobs", "A priori flagging",
    "Generation and time averaging of the WVR cal table", "Generation of the Tsys cal table",
    "Generation of the antenna position cal table",
    "Application of the WVR, Tsys and antpos cal tables",
    "Split out science SPWs and time average",
    "Listobs, clear pointing table, and save original flags", "Initial flagging",
    "Putting a model for the flux calibrator(s)", "Save flags before bandpass cal",
    "Bandpass calibration", "Save flags before gain cal", "Gain calibration",
    "Save flags before applycal", "Application of the bandpass and gain cal tables",
    "Split out corrected column", "Save flags after applycal",
)


def _step(n: int, body: str) -> str:
    return (f"# {_CAL_STEPS[n]}\nmystep = {n}\nif(mystep in thesteps):\n"
            "  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')\n"
            "  print 'Step ', mystep, step_title[mystep]\n\n" + body + "\n")


def calibration_script(eb: str) -> str:
    """scriptForCalibration.py as written by the ALMA script generator (CASA 4.5, Python 2)."""
    titles = ",\n              ".join(f"{i}: {t!r}" for i, t in enumerate(_CAL_STEPS))
    head = (
        "# ALMA Data Reduction Script\n\n# Calibration\n\nthesteps = []\n"
        f"step_title = {{{titles}}}\n\n"
        "if 'applyonly' not in globals(): applyonly = False\n"
        "try:\n  print 'List of steps to be executed ...', mysteps\n  thesteps = mysteps\n"
        "except:\n  print 'global variable mysteps not set.'\n"
        "if (thesteps==[]):\n  thesteps = range(0,len(step_title))\n"
        "  print 'Executing all steps: ', thesteps\n\n"
        "# The Python variable 'mysteps' will control which steps\n"
        "# are executed when you start the script using\n"
        "#   execfile('scriptForCalibration.py')\n\nimport re\nimport os\n\n"
        "if applyonly != True: es = aU.stuffForScienceDataReduction() \n\n"
        f"if re.search('^{CASA_VERSION}', casadef.casa_version) == None:\n"
        " sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING "
        f"THE SCRIPT: {CASA_VERSION}')\n\n"
        "# CALIBRATE_AMPLI: 1331+305=J1331+3030\n# CALIBRATE_BANDPASS: 1331+305=J1331+3030\n"
        "# CALIBRATE_PHASE: 1445+099=J1445+0958\n# OBSERVE_TARGET: NGC5921\n\n"
        "# Using reference antenna = DV08\n\n"
    )
    ms, split = f"{eb}.ms", f"{eb}.ms.split"
    steps = [
        _step(0, f"  if os.path.exists('{ms}') == False:\n"
                 f"    importasdm('{eb}', asis='Antenna Station Receiver Source CalAtmosphere "
                 "CalWVR CorrelatorMode SBSummary', bdfflags=True, lazy=False, "
                 "process_caldevice=False)\n"
                 f"  if applyonly != True: es.fixForCSV2555('{ms}')\n"),
        _step(4, f"  os.system('rm -rf {ms}.wvr')\n  mylogfile = casalog.logfile()\n"
                 f"  casalog.setlogfile('{ms}.wvrgcal')\n"
                 f"  wvrgcal(vis = '{ms}', caltable = '{ms}.wvr', spw = [17, 19, 21, 23], "
                 "toffset = 0, tie = ['NGC5921,1445+099'], statsource = 'NGC5921')\n"
                 "  casalog.setlogfile(mylogfile)\n"),
        _step(5, f"  os.system('rm -rf {ms}.tsys')\n"
                 f"  gencal(vis = '{ms}', caltable = '{ms}.tsys', caltype = 'tsys')\n"),
        _step(6, f"  os.system('rm -rf {ms}.antpos')\n"
                 f"  gencal(vis = '{ms}', caltable = '{ms}.antpos', caltype = 'antpos', "
                 "antenna = 'DA44,DV11', "
                 "parameter = [0.0012,-0.0008,0.0005,-0.0003,0.0011,0.0002])\n"),
        _step(7, f"  applycal(vis = '{ms}', field = '0', spw = '17,19,21,23', "
                 f"gaintable = ['{ms}.tsys', '{ms}.wvr', '{ms}.antpos'], "
                 "gainfield = ['0', '', ''], interp = 'linear,linear', calwt = True, "
                 "flagbackup = False)\n"),
        _step(8, f"  split(vis = '{ms}', outputvis = '{split}', datacolumn = 'corrected', "
                 "spw = '17,19,21,23', keepflags = True)\n"),
        _step(13, f"  bandpass(vis = '{split}', caltable = '{split}.bandpass', field = '0', "
                  "solint = 'inf,20MHz', combine = 'scan', refant = 'DV08', solnorm = True, "
                  "bandtype = 'B')\n"),
        _step(15, f"  gaincal(vis = '{split}', caltable = '{split}.phase_int', field = '0~1', "
                  "solint = 'int', refant = 'DV08', gaintype = 'G', calmode = 'p', "
                  f"gaintable = '{split}.bandpass')\n"
                  f"  gaincal(vis = '{split}', caltable = '{split}.ampli_inf', field = '0~1', "
                  "solint = 'inf', refant = 'DV08', gaintype = 'T', calmode = 'a', "
                  f"gaintable = ['{split}.bandpass', '{split}.phase_int'])\n"
                  f"  fluxscale(vis = '{split}', caltable = '{split}.ampli_inf', "
                  f"fluxtable = '{split}.flux_inf', reference = '0')\n"
                  f"  gaincal(vis = '{split}', caltable = '{split}.phase_inf', field = '0~1', "
                  "solint = 'inf', refant = 'DV08', gaintype = 'G', calmode = 'p', "
                  f"gaintable = '{split}.bandpass')\n"),
        _step(17, f"  applycal(vis = '{split}', field = '2', spw = '0,1,2,3', "
                  f"gaintable = ['{split}.bandpass', '{split}.phase_inf', '{split}.flux_inf'], "
                  "gainfield = ['', '1', '1'], interp = 'linear,linear', calwt = True, "
                  "flagbackup = False)\n"),
        _step(18, f"  split(vis = '{split}', outputvis = '{split}.cal', datacolumn = 'corrected', "
                  "keepflags = True)\n"),
        _step(19, f"  flagmanager(vis = '{split}.cal', mode = 'save', versionname = 'Original')\n"
                  f"  if applyonly != True: es.generateQA2Report('{split}.cal','{split}.cal.qa2', "
                  "refAnt='DV08', fluxscale='ampli_inf')\n"),
    ]
    return head + "\n".join(steps)


def flux_calibration_script(ebs: tuple[str, ...]) -> str:
    splits = ", ".join(f"'{calibration_dir_name(eb)}/{eb}.ms.split'" for eb in ebs)
    return (
        "# ALMA Data Reduction Script\n\n# Flux calibration\n\n"
        "es = aU.stuffForScienceDataReduction()\n\n"
        f"calMs = [{splits}]\n\n"
        "# Concatenating the flux calibrator scans of all EBs\n"
        "os.system('rm -rf allFluxes.txt ampli_inf.concat')\n"
        "es.concatForFluxCal(calMs, 'fluxcal.ms', 'ampli_inf')\n\n"
        "fluxscale(vis = 'fluxcal.ms', caltable = 'ampli_inf.concat', "
        "fluxtable = 'flux_inf.concat', reference = '0', refspwmap = [0, 1, 2, 3])\n"
        "es.fluxscale2caltable('fluxcal.ms', 'ampli_inf.concat', 'allFluxes.txt')\n\n"
        "for ms in calMs:\n"
        "    es.applyFluxscale(ms, 'allFluxes.txt', outputTable = ms + '.flux_inf')\n"
    )


def imaging_prep_script(ebs: tuple[str, ...]) -> str:
    cals = ", ".join(f"'../{calibration_dir_name(eb)}/{eb}.ms.split.cal'" for eb in ebs)
    return (
        "# ALMA Data Reduction Script\n\n# Imaging preparation\n\n"
        f"vislist = [{cals}]\n\n"
        "for vis in vislist:\n"
        "    listobs(vis = vis, listfile = os.path.basename(vis) + '.listobs')\n\n"
        "os.system('rm -rf calibrated.ms*')\n"
        "concat(vis = vislist, concatvis = 'calibrated.ms')\n\n"
        "split(vis = 'calibrated.ms', outputvis = 'calibrated_final.ms', field = 'NGC5921', "
        "datacolumn = 'data', keepflags = False)\n"
    )


def imaging_script() -> str:
    return (
        "# ALMA Data Reduction Script\n\n# Imaging\n\n"
        "finalvis = 'calibrated_final.ms'\n\n"
        "# Continuum imaging\n"
        "contimagename = 'calibrated_final_cont'\n"
        "for ext in ['.flux', '.image', '.mask', '.model', '.pbcor', '.psf', '.residual', "
        "'.flux.pbcoverage']:\n"
        "    rmtables(contimagename + ext)\n\n"
        "clean(vis = finalvis, imagename = contimagename, field = 'NGC5921', spw = '0,1,2,3', "
        "mode = 'mfs', psfmode = 'clark', imsize = [32, 32], cell = ['1arcsec'], "
        "weighting = 'briggs', robust = 0.5, niter = 1000, threshold = '1.0mJy', "
        "interactive = True, imagermode = 'csclean')\n\n"
        "impbcor(imagename = contimagename + '.image', pbimage = contimagename + '.flux', "
        "outfile = contimagename + '.image.pbcor', overwrite = True)\n\n"
        "# Line imaging\n"
        "lineimagename = 'calibrated_final_line'\n"
        "clean(vis = finalvis, imagename = lineimagename, field = 'NGC5921', spw = '0', "
        "mode = 'velocity', restfreq = '230.538GHz', outframe = 'LSRK', "
        "imsize = [64, 64], cell = ['0.2arcsec'], niter = 1000, threshold = '3mJy')\n\n"
        "# Export images to FITS\n"
        "myimages = [contimagename, lineimagename]\n"
        "for image in myimages:\n"
        "    exportfits(imagename = image + '.image.pbcor', "
        "fitsimage = image + '.image.pbcor.fits')\n"
        "    exportfits(imagename = image + '.flux', fitsimage = image + '.flux.fits')\n"
    )


def _casa_log(start: str, tasks: list[tuple[str, str]]) -> str:
    """CASA logger lines for the given (task, detail) pairs."""
    t0 = datetime.strptime(start, "%Y-%m-%d %H:%M")
    lines = [f"{t0:%Y-%m-%d %H:%M:%S}\tINFO\t::casa\tCASA Version {CASA_VERSION}-REL (r36115)",
             f"{t0:%Y-%m-%d %H:%M:%S}\tINFO\t::casa\t  Descriptor: Common Astronomy Software"
             " Applications"]
    for i, (task, detail) in enumerate(tasks):
        stamp = f"{t0 + timedelta(minutes=3 * i + 1, seconds=7 * i):%Y-%m-%d %H:%M:%S}"
        lines += [f"{stamp}\tINFO\t{task}::::casa\t##########################################",
                  f"{stamp}\tINFO\t{task}::::casa\t##### Begin Task: {task:<21}#####",
                  f"{stamp}\tINFO\t{task}::::casa\t{task}({detail})",
                  f"{stamp}\tINFO\t{task}::::casa\t##### End Task: {task:<23}#####",
                  f"{stamp}\tINFO\t{task}::::casa\t##########################################"]
    return "\n".join(lines) + "\n"


def _task_last(task: str, params: dict[str, str]) -> str:
    """A CASA ``<task>.last`` parameter file."""
    width = max(len(k) for k in ("taskname", *params))
    lines = [f'{"taskname":<{width}} = "{task}"']
    lines += [f"{k:<{width}} = {v}" for k, v in params.items()]
    call = ",".join(f"{k}={v}" for k, v in params.items())
    return "\n".join(lines) + f"\n#{task}({call})\n"


def _fluxscale_text(eb: str) -> str:
    return (
        f"2016-04-18 11:02:13\tINFO\tfluxscale::::\t##### Begin Task: fluxscale #####\n"
        f"2016-04-18 11:02:13\tINFO\tfluxscale::::\tfluxscale(vis=\"{eb}.ms.split\","
        f"caltable=\"{eb}.ms.split.ampli_inf\",fluxtable=\"{eb}.ms.split.flux_inf\","
        "reference=\"0\")\n"
        "2016-04-18 11:02:14\tINFO\tfluxscale::::\t Found reference field(s): 1331+305\n"
        "2016-04-18 11:02:14\tINFO\tfluxscale::::\t Found transfer field(s):  1445+099\n"
        "2016-04-18 11:02:14\tINFO\tfluxscale::::\t Flux density for 1445+099 in SpW=0 "
        "(freq=2.30538e+11 Hz) is: 0.4963 +/- 0.0055 (SNR = 90.2, N = 52)\n"
        "2016-04-18 11:02:14\tINFO\tfluxscale::::\t Fitted spectrum for 1445+099 with "
        "fitorder=0: Flux density = 0.4963 +/- 0.0055 (freq=230.538 GHz)\n"
        "2016-04-18 11:02:14\tINFO\tfluxscale::::\t##### End Task: fluxscale #####\n"
    )


def readme_header_text(project: str) -> str:
    """Cycle-3 README header as written by the reducer."""
    return (
        "Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 3\n"
        f"Project code: {project}\nSB name: NGC5921_a_06_TM1\n"
        "PI name: A. Reducer (Username: areducer)\nProject title: Sample data for qa2\n"
        "Configuration: C36-2\nProposed rms: 1.0 mJy\nProposed beam size: 1.2 arcsec\n"
        f"CASA version used for reduction: {CASA_VERSION}\nQA2 Result: PASS\n"
        "Total Number of Member SBs in this OUS Group: 1\nComments from Reducer:\n#####\n"
    )


def pi_script_text() -> str:
    """Master scriptForPI.py (the packager copies it into the delivery)."""
    return (
        "# $Id: scriptForPI.py,v 1.23 2017/10/17 13:33:42 dpetry Exp $\n"
        "# scriptForPI.py: restores the calibrated MeasurementSets of a manual reduction\n"
        "import os\nimport sys\nimport glob\n\n"
        "savingslevel = globals().get('SPACESAVING', 0)\n"
        "print('Running scriptForPI with SPACESAVING = %s' % savingslevel)\n\n"
        "if not os.path.exists('../calibrated'):\n    os.mkdir('../calibrated')\n\n"
        "for asdm in sorted(glob.glob('../raw/*.asdm.sdm')):\n"
        "    eb = os.path.basename(asdm)[:-len('.asdm.sdm')]\n"
        "    print('Calibrating %s' % eb)\n"
    )


# --------------------------------------------------------------------------- reduction tree


def _build_eb(cal_dir: Path, eb: str, index: int) -> None:
    """One ``Calibration_X*`` directory: MSs, caltables, flags, logs, QA2 report, ASDM."""
    ms = make_ms(cal_dir / f"{eb}.ms")
    split = make_ms(cal_dir / f"{eb}.ms.split")
    make_ms(cal_dir / f"{eb}.ms.split.cal")
    _save_flag_version(ms, "Original", "Original flags at importasdm")

    make_caltable(cal_dir / f"{eb}.ms.tsys", ms, "B")
    make_caltable(cal_dir / f"{eb}.ms.wvr", ms, "T")
    make_caltable(cal_dir / f"{eb}.ms.antpos", ms, "antpos")
    make_caltable(cal_dir / f"{eb}.ms.split.bandpass", split, "B")
    gains = make_caltable(cal_dir / f"{eb}.ms.split.phase_int", split, "G")
    for name in ("ampli_inf", "flux_inf", "phase_inf"):  # same table layout; copies save time
        _copy(gains, cal_dir / f"{eb}.ms.split.{name}")

    (cal_dir / f"{eb}.ms.scriptForCalibration.py").write_text(calibration_script(eb))
    (cal_dir / f"{eb}.ms.split.fluxscale").write_text(_fluxscale_text(eb))
    (cal_dir / "casa-20160418-101500.log").write_text(_casa_log("2016-04-18 10:15", [
        ("importasdm", f'asdm="{eb}",vis="{eb}.ms"'),
        ("gencal", f'vis="{eb}.ms",caltable="{eb}.ms.tsys",caltype="tsys"'),
        ("applycal", f'vis="{eb}.ms",gaintable=["{eb}.ms.tsys","{eb}.ms.wvr"]'),
        ("bandpass", f'vis="{eb}.ms.split",caltable="{eb}.ms.split.bandpass"'),
        ("split", f'vis="{eb}.ms.split",outputvis="{eb}.ms.split.cal"'),
    ]))
    (cal_dir / "applycal.last").write_text(_task_last("applycal", {
        "vis": f'"{eb}.ms.split"', "field": '"2"', "gaintable": f'["{eb}.ms.split.bandpass"]',
        "calwt": "True", "flagbackup": "False"}))
    (cal_dir / "importasdm.last").write_text(_task_last("importasdm", {
        "asdm": f'"{eb}"', "vis": '""', "asis": '"Antenna Station Receiver Source"',
        "bdfflags": "True", "lazy": "False"}))
    _write_qa2_report(cal_dir / f"{eb}.ms.split.cal.qa2", eb, index)
    write_asdm(cal_dir / f"{eb}.asdm.sdm", eb)


def _write_qa2_report(qa2_dir: Path, eb: str, index: int) -> None:
    qa2_dir.mkdir()
    for n, plot in enumerate(("bandpass_amp_spw0", "phase_vs_time_field1", "amp_vs_uvdist")):
        write_plot_png(qa2_dir / f"{eb}.ms.split.cal.{plot}.png", seed=10 * index + n)
    (qa2_dir / "textfile.txt").write_text(
        f"QA2 report for {eb}.ms.split.cal\nCASA version {CASA_VERSION}\n"
        "Flux calibrator: 1331+305   Phase calibrator: 1445+099   Target: NGC5921\n"
        "Median Tsys (K): spw17 88.1  spw19 91.4  spw21 102.7  spw23 97.9\n"
        "Antennas: 28   Flagged data fraction: 4.3 %\n")


def _build_imaging(img_dir: Path, ebs: tuple[str, ...]) -> None:
    img_dir.mkdir()
    (img_dir / "scriptForImagingPrep.py").write_text(imaging_prep_script(ebs))
    (img_dir / "scriptForImaging.py").write_text(imaging_script())
    image = make_image(img_dir / "calibrated_final_cont.image")
    flux = make_pb_image(img_dir / "calibrated_final_cont.flux")
    make_mask_image(img_dir / "calibrated_final_cont.mask")
    _export_pbcor_fits(image, flux, img_dir / "calibrated_final_cont.image.pbcor.fits")
    export_fits(flux, img_dir / "calibrated_final_cont.flux.fits")
    line_shape = (1, 3, 64, 64)
    write_pbcor_fits(img_dir / "calibrated_final_line.image.pbcor.fits", line_shape)
    write_pb_fits(img_dir / "calibrated_final_line.pb.fits", line_shape)
    cals = [f"../{calibration_dir_name(eb)}/{eb}.ms.split.cal" for eb in ebs]
    (img_dir / "casa-20160419-091000.log").write_text(_casa_log("2016-04-19 09:10", [
        ("concat", f"vis={cals},concatvis=\"calibrated.ms\""),
        ("clean", 'vis="calibrated_final.ms",imagename="calibrated_final_cont"'),
        ("impbcor", 'imagename="calibrated_final_cont.image",pbimage="calibrated_final_cont.flux"'),
        ("exportfits", 'imagename="calibrated_final_cont.image.pbcor"'),
    ]))


def _check_ebs(ebs: tuple[str, ...]) -> tuple[str, ...]:
    ebs = tuple(ebs)
    if not ebs:
        raise ValueError("at least one EB uid is needed")
    names = [calibration_dir_name(eb) for eb in ebs]
    if len(set(names)) != len(names) or not all(eb.startswith("uid___") for eb in ebs):
        raise ValueError(f"EB uids must look like uid___A002_Xb8e115_X1e3b and be distinct: {ebs}")
    return ebs


def build_manual_reduction(root: Path, *, project: str = DEFAULT_PROJECT,
                           ebs: tuple[str, ...] = DEFAULT_EBS) -> Sample:
    """Write a script-generator-assisted manual 12m reduction directory at ``root``.

    ``root`` must not exist or be empty. The README header and master scriptForPI.py are
    written next to it (``root.parent``), where the packager expects them as inputs.
    """
    root = Path(root).absolute()
    ebs = _check_ebs(ebs)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not empty")
    root.mkdir(parents=True, exist_ok=True)
    for index, eb in enumerate(ebs):
        cal_dir = root / calibration_dir_name(eb)
        cal_dir.mkdir()
        _build_eb(cal_dir, eb, index)
    (root / "scriptForFluxCalibration.py").write_text(flux_calibration_script(ebs))
    _build_imaging(root / "Imaging", ebs)

    readme = root.parent / "README.header.txt"
    readme.write_text(readme_header_text(project))
    piscript = root.parent / "piscript" / "scriptForPI.py"
    piscript.parent.mkdir(exist_ok=True)
    piscript.write_text(pi_script_text())
    return Sample(root=root, readme_header=readme, piscript=piscript, ebs=ebs, project=project)


# --------------------------------------------------------------------------- pipeline runs
#
# Pipeline run directories (``<proj>_<date>/SOUS_…/GOUS_…/MOUS_…/{working,products,rawdata}``) and
# staged trees with the real names of docs/domain.md §2.4, §5.1 and §5.2. Archives are real gzip
# tars, FITS are real (astropy), PPRs are XML shaped like the pipeline's executeppr test files.


def pipeline_ppr_xml(*, proposal: str, ous: str | None, sb_status: str, ebs: tuple[str, ...],
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


def tgz_bytes(members: dict[str, bytes]) -> bytes:
    """A gzip tar in memory, written like the pipeline's ``tarfile.open(..., 'w:gz')``."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1485268000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pipeline_weblog_tgz(stamp: str, recipe: str = "hifa_calimage") -> bytes:
    top = f"pipeline-{stamp}/html"
    return tgz_bytes({
        f"{top}/index.html": b"<html><head><title>Pipeline weblog</title></head></html>\n",
        f"{top}/t1-1.html": b"<html>Observation summary</html>\n",
        f"{top}/stage1/t2-4m.html": f"<html>{recipe.split('_')[0]}_importdata</html>\n".encode(),
        f"{top}/stage1/listobs.txt": b"Observer: areducer  Project: uid://A001/X87c/X5c\n",
    })


def pipeline_caltables_tgz(ebs: tuple[str, ...]) -> bytes:
    return tgz_bytes({f"{eb}.ms.hifa_bandpass.s6_3.spw17_19_21_23.channel.solintinf.bcal.tbl/"
                      "table.dat": b"casacore table" for eb in ebs})


def pipeline_flagversions_tgz(eb: str) -> bytes:
    return tgz_bytes({f"{eb}.ms.flagversions/FLAG_VERSION_LIST": b"Pipeline_Final : final flags\n",
                      f"{eb}.ms.flagversions/flags.Pipeline_Final/table.dat": b"casacore table"})


def pipeline_calapply(eb: str) -> str:
    return (f"applycal(vis='{eb}.ms', field='', intent='', spw='17,19,21,23', antenna='', "
            f"gaintable=['{eb}.ms.hifa_bandpass.s6_3.channel.solintinf.bcal.tbl'], "
            "gainfield=[''], spwmap=[[]], interp=['linear,linearflag'], calwt=[False])\n")


def pipeline_casa_log(stamp: str, recipe: str = "hifa_calimage") -> str:
    return (f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} 23:34:44 INFO ::casa\tCASA Version 4.7.0-REL\n"
            f"INFO ::casa\tpipeline recipe {recipe}\n")


def write_pipeline_fits(path: Path) -> Path:
    """A real FITS image of the kind its name says (pbcor, pb, mask, TP ``.sd.`` …)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    shape = (1, 4, 32, 32) if ".cube." in name else (1, 1, 32, 32)
    if name.endswith((".pb.fits", ".pb.tt0.fits", ".flux.fits")):
        return write_pb_fits(path, shape)
    if name.endswith(".mask.fits"):
        return write_mask_fits(path, shape)
    if ".sd." in name:
        return write_tp_image_fits(path)
    return write_pbcor_fits(path, shape)


def _write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


@dataclass(frozen=True)
class PipelineRun:
    """A pipeline run directory ``<proj>_<date>`` and the OUS tree in it."""

    root: Path  # the run directory (PIPELINE_ROOT of qa2 stage)
    project: str
    mous: str
    ebs: tuple[str, ...]
    tree: str  # relpath of the MOUS-level dir holding working/ products/ rawdata/
    ous: tuple[str, str, str] = ("", "", "")  # (SOUS, GOUS, MOUS) as the directory names say

    @property
    def products(self) -> Path:
        return self.root / self.tree / "products"

    @property
    def working(self) -> Path:
        return self.root / self.tree / "working"


def _ous_tree(sous: str, gous: str, mous: str) -> str:
    return f"SOUS_{sous}/GOUS_{gous}/MOUS_{mous}"


# 2017-07+ era (docs/domain.md §5.2): recipe-named products, pprequest.xml, masks, aux calibration,
# and one <M>.auxproducts.tgz holding flux.csv, antennapos.csv, cont.dat and the flag templates,
# while working/ still holds its own flux.csv, antennapos.csv and cont.dat.
AUX_PROJECT = "2017.1.00271.S"
AUX_OUS = ("uid___A001_X1284_X1ef0", "uid___A001_X1284_X1ef1", "uid___A001_X1284_X1ef2")
AUX_EBS = ("uid___A002_Xc6c0d5_X1e46",)


def pipeline_restore_script(ebs: list[str], sessions: list[str]) -> str:
    """A ``casa_piperestorescript.py`` as the pipeline exported it for 2017 hifa_calimage runs."""
    return ("from recipes.almahelpers import fixsyscaltimes # SACM/JAO - Fixes\n"
            "__rethrow_casa_exceptions = True\nh_init()\ntry:\n"
            f"    hifa_restoredata (vis={ebs!r}, session={sessions!r}, ocorr_mode='ca')\n"
            "finally:\n    h_save()\n")


def pipeline_manifest_xml(mous: str, recipe: str, session: str, ebs: list[str]) -> str:
    """A ``pipeline_manifest.xml`` with what scriptForPI and the restore read (element and
    attribute names of the pipeline's h/tasks/common/manifest.py; ``name`` first, as
    scriptForPI 1.23-1.34 read ``items()[0]``)."""
    asdms = "".join(
        f'      <asdm name="{eb}.ms">\n'
        f'        <finalflags name="{eb}.ms.flagversions.tgz"/>\n'
        f'        <applycmds name="{eb}.ms.calapply.txt"/>\n      </asdm>\n' for eb in ebs)
    return ('<?xml version="1.0" ?>\n<piperesults name="' + mous + '">\n'
            f'  <ous name="{mous}">\n    <casaversion name="5.1.1-5"/>\n'
            f'    <pipeline_version name="40896M"/>\n    <procedure_name name="{recipe}"/>\n'
            f'    <session name="{session}">\n'
            f'      <caltables name="{mous}.{session}.caltables.tgz"/>\n{asdms}    </session>\n'
            f'    <aux_products_file name="{mous}.auxproducts.tgz" level="member" '
            'datatype="auxproducts" format="tgz"/>\n  </ous>\n</piperesults>\n')


def build_auxproducts_run(base: Path, *, with_working_ppr: bool = True) -> PipelineRun:
    """A 2017-11 hifa_calimage run with ``products/<M>.auxproducts.tgz`` and ``working/flux.csv``,
    ``antennapos.csv``, ``cont.dat`` beside it (``with_working_ppr=False``: working/ has no PPR,
    so the products' ``<M>.pprequest.xml`` is the only one)."""
    root = Path(base) / f"{AUX_PROJECT}_2017_11_02T10_20_30.123"
    tree = _ous_tree(*AUX_OUS)
    m, r, eb = AUX_OUS[2], "hifa_calimage", AUX_EBS[0]
    ppr = pipeline_ppr_xml(proposal=AUX_PROJECT, ous=m, sb_status="uid___A001_X1284_X1ef3",
                           ebs=AUX_EBS, namespace=True)
    aux = tgz_bytes({"flux.csv": b"ms,field\n", "antennapos.csv": b"ms,antenna\n",
                     "cont.dat": b"Field: Orion\n", f"{eb}_flagtemplate.txt": b"mode='manual'\n"})
    _write_files(root / tree / "products", {
        f"{m}.pprequest.xml": ppr,
        f"{eb}.ms.flagversions.tgz": pipeline_flagversions_tgz(eb),
        f"{eb}.ms.calapply.txt": pipeline_calapply(eb),
        f"{eb}.ms.auxcalapply.txt": pipeline_calapply(eb),
        f"{m}.session_1.caltables.tgz": pipeline_caltables_tgz(AUX_EBS),
        f"{m}.session_1.auxcaltables.tgz": pipeline_caltables_tgz(AUX_EBS),
        f"{m}.auxproducts.tgz": aux,
        f"{m}.{r}.weblog.tgz": pipeline_weblog_tgz("20171102T102030"),
        f"{m}.{r}.casa_commands.log": "hifa_importdata()\n",
        f"{m}.{r}.casa_pipescript.py": "h_init()\n",
        f"{m}.{r}.casa_piperestorescript.py": pipeline_restore_script([eb], ["session_1"]),
        f"{m}.{r}.pipeline_manifest.xml": pipeline_manifest_xml(m, r, "session_1", [eb]),
        f"{m}.{r}.pipeline_aquareport.xml": "<AquaReport/>\n",
    })
    for name in ("Orion_sci.spw25.cube.I.pbcor.fits", "Orion_sci.spw25.cube.I.pb.fits",
                 "Orion_sci.spw25.cube.I.mask.fits"):
        write_pipeline_fits(root / tree / "products" / f"{m}.{name}")
    working = {
        "flux.csv": "ms,field\n", "antennapos.csv": "ms,antenna\n", "cont.dat": "Field: Orion\n",
        f"{eb}_flagtemplate.txt": "mode='manual'\n", f"{eb}_flagtsystemplate.txt": "mode='manual'\n",
        "casa-20171102-102030.log": pipeline_casa_log("20171102"),
        "pipeline-20171102T102030/html/index.html": "<html/>\n",
    }
    if with_working_ppr:
        working["PPR_uid___A001_X1284_X1ef3.xml"] = ppr
    _write_files(root / tree / "working", working)
    write_asdm(root / tree / "rawdata" / eb, eb)
    return PipelineRun(root, AUX_PROJECT, m, AUX_EBS, tree, AUX_OUS)


# Pipeline-calibrated Total Power (hsd_calimage). Era "2015": the packager page's own example
# run name, .tar.gz products and an unprefixed jyperk.csv (docs/domain.md §5.2 "TP (hsd)"). Era
# "2017": recipe-named products (<M>.hsd_calimage.*), .tgz, and jyperk.csv inside
# <M>.auxproducts.tgz, with working/jyperk.csv beside it.
TP_PROJECT = "2013.1.00911.S"
TP_OUS = ("uid___A001_X145_X1a0", "uid___A001_X145_X1a1", "uid___A001_X145_X1a2")
TP_EBS = ("uid___A002_Xa5df2c_X5e3",)
TP_2017_PROJECT = "2017.1.00161.L"
TP_2017_OUS = ("uid___A001_X1273_X2d0", "uid___A001_X1273_X2d1", "uid___A001_X1273_X2d2")
TP_2017_EBS = ("uid___A002_Xc4f3ae_X9a1",)
JYPERK_CSV = "MS,Antenna,Spwid,Polarization,Factor\nuid___A002_Xa5df2c_X5e3.ms,PM03,17,XX,44.1\n"


def build_tp_pipeline_run(base: Path, *, era: str = "2015") -> PipelineRun:
    """A single-dish pipeline run (``hsd_calimage``) of the given era ("2015" or "2017")."""
    if era == "2017":
        return _build_tp_2017_run(Path(base))
    if era != "2015":
        raise ValueError(f"era must be '2015' or '2017', not {era!r}")
    root = Path(base) / f"{TP_PROJECT}_2015_08_07T16_10_05.732"
    tree = _ous_tree(*TP_OUS)
    m, eb = TP_OUS[2], TP_EBS[0]
    ppr = pipeline_ppr_xml(proposal=TP_PROJECT, ous=m, sb_status="uid___A001_X145_X1a3",
                           ebs=TP_EBS, recipe="hsd_calimage", sb_title="M100_a_06_TP")
    _write_files(root / tree / "products", {
        "PPR_uid___A001_X145_X1a3.xml": ppr,
        f"{m}.session_1.caltables.tar.gz": pipeline_caltables_tgz(TP_EBS),
        f"{eb}.ms.flagversions.tar.gz": pipeline_flagversions_tgz(eb),
        f"{m}.weblog.tar.gz": pipeline_weblog_tgz("20150807T161005", "hsd_calimage"),
        f"{m}.casa_commands.log": "hsd_importdata()\n",
        f"{m}.casa_pipescript.py": "h_init()\nhsd_importdata()\n",
        "jyperk.csv": "MS,Antenna,Spwid,Polarization,Factor\n",
    })
    write_pipeline_fits(root / tree / "products" / f"{m}.M100.spw17.cube.I.sd.fits")
    _write_files(root / tree / "working", {
        "PPR_uid___A001_X145_X1a3.xml": ppr, "jyperk.csv": "MS,Antenna,Spwid,Polarization,Factor\n",
        "casa-20150807-161005.log": pipeline_casa_log("20150807", "hsd_calimage"),
        "pipeline-20150807T161005/html/index.html": "<html/>\n",
    })
    return PipelineRun(root, TP_PROJECT, m, TP_EBS, tree, TP_OUS)


def _build_tp_2017_run(base: Path) -> PipelineRun:
    root = base / f"{TP_2017_PROJECT}_2017_12_04T08_15_42.117"
    tree = _ous_tree(*TP_2017_OUS)
    m, r, eb = TP_2017_OUS[2], "hsd_calimage", TP_2017_EBS[0]
    ppr = pipeline_ppr_xml(proposal=TP_2017_PROJECT, ous=m, sb_status="uid___A001_X1273_X2d3",
                           ebs=TP_2017_EBS, recipe=r, sb_title="Orion_a_03_TP")
    _write_files(root / tree / "products", {
        f"{m}.pprequest.xml": ppr,
        f"{m}.session_1.caltables.tgz": pipeline_caltables_tgz(TP_2017_EBS),
        f"{eb}.ms.flagversions.tgz": pipeline_flagversions_tgz(eb),
        f"{m}.auxproducts.tgz": tgz_bytes({"jyperk.csv": JYPERK_CSV.encode()}),
        f"{m}.{r}.weblog.tgz": pipeline_weblog_tgz("20171204T081542", r),
        f"{m}.{r}.casa_commands.log": "hsd_importdata()\n",
        f"{m}.{r}.casa_pipescript.py": "h_init()\nhsd_importdata()\n",
        f"{m}.{r}.pipeline_manifest.xml":
            f"<piperesults><ous name='{m}'><aux_products_file name='{m}.auxproducts.tgz'/>"
            "</ous></piperesults>\n",
    })
    write_pipeline_fits(root / tree / "products" / f"{m}.Orion.spw19.cube.I.sd.fits")
    _write_files(root / tree / "working", {
        "PPR_uid___A001_X1273_X2d3.xml": ppr, "jyperk.csv": JYPERK_CSV,
        "casa-20171204-081542.log": pipeline_casa_log("20171204", r),
        "pipeline-20171204T081542/html/index.html": "<html/>\n",
    })
    write_asdm(root / tree / "rawdata" / eb, eb)
    return PipelineRun(root, TP_2017_PROJECT, m, TP_2017_EBS, tree, TP_2017_OUS)


STAGED_MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"


def build_staged_tp_tree(base: Path) -> Path:
    """What ``qa2 stage`` makes of the 2015 TP run (placeholder OUS names, nothing compressed):
    ``<base>/<proj>/sg_ouss_id/group_ouss_id/member_ouss_id/``. Returns ``<base>/<proj>``."""
    root = Path(base) / TP_PROJECT
    m, eb = TP_OUS[2], TP_EBS[0]
    member = root / STAGED_MEMBER
    _write_files(member, {
        "README": "",
        "calibration/jyperk.csv": JYPERK_CSV,
        f"calibration/{m}.session_1.caltables.tar.gz": pipeline_caltables_tgz(TP_EBS),
        f"calibration/{eb}.ms.flagversions.tar.gz": pipeline_flagversions_tgz(eb),
        f"log/{m}.casa_commands.log": "hsd_importdata()\n",
        "log/casa-20150807-161005.log": pipeline_casa_log("20150807", "hsd_calimage"),
        f"qa/{m}.weblog.tar.gz": pipeline_weblog_tgz("20150807T161005", "hsd_calimage"),
        "script/PPR_uid___A001_X145_X1a3.xml": pipeline_ppr_xml(
            proposal=TP_PROJECT, ous=m, sb_status="uid___A001_X145_X1a3", ebs=TP_EBS,
            recipe="hsd_calimage", sb_title="M100_a_06_TP"),
        "script/casa_pipescript.py": "h_init()\nhsd_importdata()\n",
        "script/scriptForPI.py": pi_script_text(),
    })
    write_pipeline_fits(member / "product" / f"{m}.M100.spw17.cube.I.sd.fits")
    return root


# --------------------------------------------------------------------------- manual layouts
#
# One manual reduction as reducers lay it out by hand (docs/domain.md §2.5, §3.1). The JAO layout
# keeps each EB's QA2 material beside its calibration, in the per-EB ``Calibration_X*/`` folders;
# the NRAO layout gathers the same files in one ``QA2/`` folder. qa2 must make one package of both.

MANUAL_SB = "NGC5921_a_06_TM1"
MANUAL_LAYOUTS = ("jao", "nrao")
# Per-EB QA2 plots with the same names in every EB (``Calibration_X*/qa2/`` in the JAO layout).
_GENERIC_QA2 = ("ampVsTime.png", "bandpass.png", "phaseVsTime.png")


def write_pdf(path: Path, lines: tuple[str, ...]) -> Path:
    """A valid one-page PDF (stdlib only) showing ``lines`` in Helvetica."""
    def text(line: str) -> str:
        return "(" + line.replace("\\", r"\\").replace("(", r"\(").replace(")", r"\)") + ") Tj T*"

    stream = "BT /F1 11 Tf 14 TL 56 780 Td " + " ".join(map(text, lines)) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path = Path(path)
    path.write_bytes(out)
    return path


def _all_fluxes_text(ebs: tuple[str, ...]) -> str:
    """``allFluxes.txt`` as es.fluxscale2caltable writes it and scriptForFluxCalibration reads it."""
    rows = [f"{eb}.ms.split  1445+099  {spw}  2.30538e+11  {0.4963 - 0.002 * spw:.4f}  0.0055  90.2"
            for eb in ebs for spw in range(4)]
    return "# MS  field  spw  freq(Hz)  flux(Jy)  error(Jy)  SNR\n" + "\n".join(rows) + "\n"


def add_qa2_material(root: Path, ebs: tuple[str, ...], layout: str = "jao", *,
                     sb: str = MANUAL_SB,
                     plot_tables: tuple[str, ...] = ("tsys", "split.bandpass")) -> None:
    """Add the QA2 and diagnostic files of a hand-made reduction to ``root`` (made by
    :func:`build_manual_reduction` or a TP builder: per-EB ``Calibration_X*/`` folders and
    ``Imaging/``), laid out as ``layout`` does:

    * per EB: ``<EB>.qa2_report.txt``, ``<EB>.qa2_ampVsTime.png``, ``<EB>.qa2_bandpass.png``,
      ``<EB>.ms.weather.png``, the calibration plot folders ``<EB>.ms.<table>.plots/`` (one per
      ``plot_tables``; the same inner names in every EB) and QA2 plots with the same names in
      every EB: in ``Calibration_X*/`` and its ``qa2/`` (``jao``), or in ``QA2/`` and
      ``QA2/Calibration_X*/`` (``nrao``, where the ``<EB>.ms.split.cal.qa2/`` folders move too);
    * per SB: ``QA2_Report_<SB>.pdf`` (a real PDF) and ``weather.png``: in ``root`` or ``QA2/``;
    * in both layouts: ``<EB>.ms.listobs.txt`` beside each EB's data, ``Imaging/calibrated_final.ms.listobs``
      and ``Imaging/tclean.last``, and ``allFluxes.txt`` beside ``scriptForFluxCalibration.py``.
    """
    if layout not in MANUAL_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {MANUAL_LAYOUTS}")
    root = Path(root)
    qa2 = root / "QA2"
    for index, eb in enumerate(ebs):
        cal = root / calibration_dir_name(eb)
        here = cal if layout == "jao" else qa2
        here.mkdir(exist_ok=True)
        (here / f"{eb}.qa2_report.txt").write_text(
            f"QA2 report for {eb}\nSB: {sb}\nQA2 result: PASS\nAntennas: 28   Flagged: 4.3 %\n")
        for n, plot in enumerate(("qa2_ampVsTime", "qa2_bandpass", "ms.weather")):
            write_plot_png(here / f"{eb}.{plot}.png", seed=100 + 10 * index + n)
        for n, table in enumerate(plot_tables):
            plots = here / f"{eb}.ms.{table}.plots"
            plots.mkdir()
            for spw in (17, 19):
                write_plot_png(plots / f"{table.rpartition('.')[2]}_spw{spw}.png",
                               seed=200 + 10 * index + 2 * n + spw % 2)
        generic = cal / "qa2" if layout == "jao" else qa2 / cal.name
        generic.mkdir(parents=True)
        for n, name in enumerate(_GENERIC_QA2):
            write_plot_png(generic / name, seed=300 + 10 * index + n)
        (generic / "textfile.txt").write_text(f"QA2 summary of {eb}\nMedian Tsys (K): 91.4\n")
        report = cal / f"{eb}.ms.split.cal.qa2"
        if layout == "nrao" and report.is_dir():
            report.rename(qa2 / report.name)
        (cal / f"{eb}.ms.listobs.txt").write_text(
            f"Observation: ALMA  MeasurementSet Name: {eb}.ms\nFields: 3  Spectral Windows: 4\n")
    top = root if layout == "jao" else qa2
    write_pdf(top / f"QA2_Report_{sb}.pdf", (f"QA2 report of SB {sb}", "QA2 result: PASS",
                                              f"EBs: {', '.join(ebs)}"))
    write_plot_png(top / "weather.png", seed=400)
    imaging = root / "Imaging"
    if imaging.is_dir():
        (imaging / "calibrated_final.ms.listobs").write_text(
            "Observation: ALMA  MeasurementSet Name: calibrated_final.ms\nFields: 1\n")
        (imaging / "tclean.last").write_text(_task_last("tclean", {
            "vis": '"calibrated_final.ms"', "imagename": '"calibrated_final_cont"'}))
    if (root / "scriptForFluxCalibration.py").is_file():
        (root / "allFluxes.txt").write_text(_all_fluxes_text(ebs))


def build_manual_layouts(base: Path, *, project: str = DEFAULT_PROJECT,
                         ebs: tuple[str, ...] = DEFAULT_EBS) -> dict[str, Sample]:
    """One manual reduction in each of :data:`MANUAL_LAYOUTS`, ``{layout: Sample}``, each below
    ``base/<layout>/reduction`` with its README header and PI script beside it. The reduction is
    built once (:func:`build_manual_reduction`) and copied, so every layout holds the same bytes;
    :func:`add_qa2_material` then lays out the same QA2 material the layout's way."""
    base = Path(base).absolute()
    first = build_manual_reduction(base / MANUAL_LAYOUTS[0] / "reduction", project=project, ebs=ebs)
    samples = {MANUAL_LAYOUTS[0]: first}
    for layout in MANUAL_LAYOUTS[1:]:
        shutil.copytree(first.root.parent, base / layout, symlinks=True)
        moved = {p: base / layout / p.relative_to(first.root.parent)
                 for p in (first.root, first.readme_header, first.piscript)}
        samples[layout] = Sample(moved[first.root], moved[first.readme_header],
                                 moved[first.piscript], first.ebs, project)
    for layout, sample in samples.items():
        add_qa2_material(sample.root, sample.ebs, layout)
    return samples


# --------------------------------------------------------------------------- manual Total Power
#
# A manual single-dish reduction as the QA2 script generator (CASA 4.7, SDscience) leaves it:
# per-EB ``Calibration_X*/`` folders with real MSs, caltables and the EB's
# ``<EB>.ms.scriptForSDCalibration.py``, ``Imaging/`` with the imaging script, a real CASA image
# and its FITS exports, ``jyperk.csv``, a ``qa2/`` folder, and the reducer's copy of
# ``scriptForPI.py`` (packaged when no --piscript is given, as the original page's TP call does).

TP_MANUAL_PROJECT = "2016.1.00234.S"
TP_MANUAL_EBS = ("uid___A002_Xc4f3ae_X57a5", "uid___A002_Xc4f3ae_X5c31")
TP_MANUAL_CASA_VERSION = "4.7.2"
# Jy/K factors per EB, antenna and spw (XX/YY averaged), as the reducer measured them.
TP_JYPERK = {
    TP_MANUAL_EBS[0]: {"PM01": {17: 43.2, 19: 43.9}, "PM03": {17: 44.1, 19: 44.6}},
    TP_MANUAL_EBS[1]: {"PM01": {17: 42.8, 19: 43.5}, "PM03": {17: 43.7, 19: 44.0}},
}
_SD_STEPS = (
    "Import of the ASDM", "listobs", "A priori flagging", "Generation of the Tsys cal table",
    "Generation of the Sky cal table", "Do initial flagging", "Calibration of the data into Kelvins",
    "Subtracting the baseline", "Split and concatenation",
    "Convert the Science Target Units from Kelvin to Jansky",
)


def _sd_step(n: int, body: str) -> str:
    return (f"# {_SD_STEPS[n]}\nmystep = {n}\nif(mystep in thesteps):\n"
            "  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')\n"
            "  print 'Step ', mystep, step_title[mystep]\n\n" + body + "\n")


def sd_calibration_script(eb: str) -> str:
    """``<EB>.ms.scriptForSDCalibration.py`` as the QA2 generator writes it (CASA 4.7, SDscience):
    the Jy/K factors close the script."""
    ms = f"{eb}.ms"
    version = TP_MANUAL_CASA_VERSION
    titles = ",\n              ".join(f"{i}: {t!r}" for i, t in enumerate(_SD_STEPS))
    head = (
        "# ALMA Data Reduction Script\n\n# Calibration\n\nthesteps = []\n"
        f"step_title = {{{titles}}}\n\n"
        "try:\n  print 'List of steps to be executed ...', mysteps\n  thesteps = mysteps\n"
        "except:\n  print 'global variable mysteps not set.'\n"
        "if (thesteps==[]):\n  thesteps = range(0,len(step_title))\n"
        "  print 'Executing all steps: ', thesteps\n\n"
        "import os\nimport re\n\n"
        f"if re.search('^{version}', casadef.casa_version) == None:\n"
        " sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING "
        f"THE SCRIPT: {version}')\n\n"
        "# OBSERVE_TARGET#ON_SOURCE: M100\n# OBSERVE_TARGET#OFF_SOURCE: M100\n\n"
    )
    factors = TP_JYPERK[eb]
    jyperk = ",\n  ".join(
        f"'{ant}': {{" + ", ".join(f"{spw}: {{'mean': {v}, 'n': 2}}" for spw, v in spws.items()) + "}"
        for ant, spws in factors.items())
    steps = [
        _sd_step(0, f"  if os.path.exists('{ms}') == False:\n"
                    f"    importasdm('{eb}', asis='Antenna Station Receiver Source CalAtmosphere "
                    "CalWVR', bdfflags=True, lazy=False, process_caldevice=False)\n"),
        _sd_step(1, f"  listobs(vis = '{ms}', listfile = '{ms}.listobs')\n"),
        _sd_step(2, f"  flagdata(vis = '{ms}', mode = 'manual', autocorr = False, "
                    "intent = '*POINTING*,*FOCUS*,*ATMOSPHERE*,*SIDEBAND_RATIO*', "
                    "flagbackup = False)\n"),
        _sd_step(3, f"  gencal(vis = '{ms}', caltable = '{ms}.tsys', caltype = 'tsys')\n"),
        _sd_step(4, f"  sdcal(infile = '{ms}', outfile = '{ms}.sky', calmode = 'otfraster')\n"),
        _sd_step(5, f"  flagdata(vis = '{ms}', mode = 'manual', spw = '17:0~119;3960~4079')\n"),
        _sd_step(6, f"  sdcal(infile = '{ms}', calmode = 'apply', spw = '17,19', "
                    f"applytable = ['{ms}.tsys', '{ms}.sky'], spwmap = {{'9':[17], '11':[19]}}, "
                    f"interp = 'linear,cspline', outfile = '{ms}.sky.cal')\n"),
        _sd_step(7, f"  sdbaseline(infile = '{ms}.sky.cal', datacolumn = 'corrected', "
                    "spw = '17,19', maskmode = 'auto', thresh = 5.0, avg_limit = 8, "
                    f"blfunc = 'poly', order = 1, outfile = '{ms}.cal.bl')\n"),
        _sd_step(8, f"  os.system('rm -Rf {ms}.cal')\n  os.system('cp -Rf {ms}.cal.bl {ms}.cal')\n"),
        _sd_step(9, f"  jyperk = \\\n{{ {jyperk}}}\n\n"
                    f"  os.system('rm -Rf {ms}.cal.jy')\n  os.system('cp -Rf {ms}.cal {ms}.cal.jy')\n"
                    "  for ant in jyperk.keys():\n    for spw in jyperk[ant].keys():\n"
                    f"      scaleAutocorr(vis='{ms}.cal.jy', scale=jyperk[ant][spw]['mean'], "
                    "antenna=ant, spw=spw)\n"),
    ]
    lines = [f"# Jy/K factors: spw{spw} XX {v} YY {v} ({ant})"
             for ant, spws in factors.items() for spw, v in spws.items()]
    return head + "\n".join(steps) + "\n" + "\n".join(lines) + "\n"


def sd_imaging_script(ebs: tuple[str, ...]) -> str:
    """``scriptForSDimaging.py``: sdimaging of the Jy-scaled MSs, then the FITS exports."""
    mss = ", ".join(f"'../{calibration_dir_name(eb)}/{eb}.ms.cal.jy'" for eb in ebs)
    return (
        "# ALMA Data Reduction Script\n\n# Imaging\n\n"
        f"msNames = [{mss}]\n\n"
        "sdimaging(infiles = msNames, field = 'M100', spw = '17', nchan = 70, mode = 'velocity', "
        "start = '1400km/s', width = '5km/s', veltype = 'radio', outframe = 'lsrk', "
        "restfreq = '115.271204GHz', gridfunction = 'SF', convsupport = 6, stokes = 'I', "
        "phasecenter = 'J2000 12h22m54.9 +15d49m15', ephemsrcname = '', imsize = [24, 24], "
        "cell = '9.0arcsec', overwrite = True, outfile = 'M100_TP_spw17.image')\n\n"
        "exportfits(imagename = 'M100_TP_spw17.image', fitsimage = 'M100_TP_spw17.image.fits')\n"
        "imsmooth(imagename = 'M100_TP_spw17.image', outfile = 'M100_TP_spw17.sd.im')\n"
        "exportfits(imagename = 'M100_TP_spw17.sd.im', fitsimage = 'M100_TP_spw17.sd.im.fits')\n"
    )


def sd_casa_log(start: str, tasks: list[tuple[str, str]]) -> str:
    """CASA 4.7 logger lines of a TP reduction for the given (task, detail) pairs."""
    lines = [f"{start}:00\tINFO\t::casa\tCASA Version {TP_MANUAL_CASA_VERSION}-REL (r39732)"]
    for task, detail in tasks:
        lines += [f"{start}:07\tINFO\t{task}::::casa\t##### Begin Task: {task:<21}#####",
                  f"{start}:07\tINFO\t{task}::::casa\t{task}({detail})",
                  f"{start}:09\tINFO\t{task}::::casa\t##### End Task: {task:<23}#####"]
    return "\n".join(lines) + "\n"


def jyperk_csv(ebs: tuple[str, ...]) -> str:
    """The reducer's ``jyperk.csv``: one row per EB, antenna, spw and polarization."""
    rows = ["MS,Antenna,Spwid,Polarization,Factor"]
    for eb in ebs:
        for ant, spws in TP_JYPERK[eb].items():
            rows += [f"{eb}.ms,{ant},{spw},{pol},{v}" for spw, v in spws.items()
                     for pol in ("XX", "YY")]
    return "\n".join(rows) + "\n"


TP_PISCRIPT_TEXT = "# $Id: scriptForPI.py,v 2.5 2023/10/03 dpetry Exp $\nprint('PI')\n"


def build_tp_reduction(root: Path, ebs: tuple[str, ...] = TP_MANUAL_EBS, *,
                       project: str = TP_MANUAL_PROJECT) -> Sample:
    """A manual TP reduction as a reducer leaves it: per-EB calibration dirs, imaging dir, and
    the reducer's own ``scriptForPI.py`` at the top (a copy of the master one).

    ``root`` must not exist. The README header (naming ``project``) and the master
    ``master/scriptForPI.py`` are written next to it (``root.parent``), where the packager
    expects them as inputs."""
    root = Path(root).absolute()
    root.mkdir(parents=True)
    for i, eb in enumerate(ebs):
        cal = root / calibration_dir_name(eb)
        cal.mkdir()
        (cal / f"{eb}.ms.scriptForSDCalibration.py").write_text(sd_calibration_script(eb))
        ms = make_ms(cal / f"{eb}.ms")
        make_caltable(cal / f"{eb}.ms.tsys", ms, "B")
        make_caltable(cal / f"{eb}.ms.sky", ms, "G")
        make_ms(cal / f"{eb}.ms.cal.jy")
        write_asdm(cal / f"{eb}.asdm.sdm", eb)
        (cal / f"casa-20170612-1{i}1502.log").write_text(sd_casa_log(f"2017-06-12 1{i}:15", [
            ("importasdm", f'asdm="{eb}",vis="{eb}.ms"'),
            ("gencal", f'vis="{eb}.ms",caltable="{eb}.ms.tsys",caltype="tsys"'),
            ("sdcal", f'infile="{eb}.ms",outfile="{eb}.ms.sky",calmode="otfraster"'),
            ("sdbaseline", f'infile="{eb}.ms.sky.cal",blfunc="poly",order=1'),
        ]))
        (cal / "sdcal.last").write_text(f'taskname = "sdcal"\ninfile = "{eb}.ms"\n#sdcal()\n')
    img = root / "Imaging"
    img.mkdir()
    (img / "scriptForSDimaging.py").write_text(sd_imaging_script(ebs))
    image = make_image(img / "M100_TP_spw17.image")
    export_fits(image, img / "M100_TP_spw17.image.fits")
    write_tp_image_fits(img / "M100_TP_spw17.sd.im.fits", obj="M100")
    (img / "casa-20170613-091000.log").write_text(sd_casa_log("2017-06-13 09:10", [
        ("sdimaging", "infiles=[...],outfile=\"M100_TP_spw17.image\""),
        ("exportfits", 'imagename="M100_TP_spw17.image"'),
    ]))
    (root / "jyperk.csv").write_text(jyperk_csv(ebs))
    qa2 = root / "qa2"
    qa2.mkdir()
    for i, eb in enumerate(ebs):
        write_plot_png(qa2 / f"{eb}.ms.tsys.spw17.png", seed=i)
    (qa2 / "textfile.txt").write_text("QA2 report, Total Power\nTarget: M100\n"
                                      "Median Tsys (K): spw17 131.2  spw19 128.7\n")
    (root / "scriptForPI.py").write_text(TP_PISCRIPT_TEXT)

    readme = root.parent / "README.header.txt"
    readme.write_text(
        "Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 4\n"
        f"Project code: {project}\nSB name: M100_a_06_TP\nPI name: A. Reducer\n"
        f"CASA version used for reduction: {TP_MANUAL_CASA_VERSION}\nQA2 Result: PASS\n"
        "Comments from Reducer: Total Power data\n#####\n")
    piscript = root.parent / "master" / "scriptForPI.py"
    piscript.parent.mkdir(exist_ok=True)
    piscript.write_text(TP_PISCRIPT_TEXT)
    return Sample(root, readme, piscript, tuple(ebs), project)


# --------------------------------------------------------------------------- Case 2 analysis tree
#
# The original page's "Case 2": a staged tree (what ``qa2 stage`` makes of a 2014 calibration-only
# hifa_cal run, Cycle-1 A002 OUS UIDs) arrived at an ARC; the analyst ran scriptForPI (raw/ beside
# the member, calibrated/ with the restored MS and the pipeline restore's leftovers) and imaged by
# hand in calibrated/ (FITS exports, CASA images, scriptForImaging.py). Real MS and CASA images
# (casatools), real FITS (astropy), real gzip tars.

ANALYSIS_PROJECT = "2012.1.00688.S"
ANALYSIS_OUS = ("uid___A002_X5ce05d_X18b", "uid___A002_X5ce05d_X18c", "uid___A002_X5ce05d_X18d")
ANALYSIS_EBS = ("uid___A002_X83b3ce_X4d2",)


def analysis_readme_header_text(project: str = ANALYSIS_PROJECT) -> str:
    """The README header the analyst writes for the Case 2 delivery."""
    return (
        "Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 2\n"
        f"Project code: {project}\nSB name: IRAS_16293_b7\nPI name: A. Reducer\n"
        "CASA version used for reduction: 4.2.2\nQA2 Result: PASS\n"
        "Comments from Reducer: pipeline calibration, manual imaging\n#####\n")


def build_analysis_tree(base: Path) -> Path:
    """``<base>/<proj>/sg_ouss_id/group_ouss_id/member_ouss_id/``: the staged Cycle-2 member plus
    the analyst's ``raw/`` and ``calibrated/`` (Case 2 of the original packager page). Returns
    ``<base>/<proj>``; package it with a pipeline style (cycle2-pipe1 …) and a PI script."""
    root = Path(base).absolute() / ANALYSIS_PROJECT
    if root.exists():
        raise FileExistsError(root)
    m, eb = ANALYSIS_OUS[2], ANALYSIS_EBS[0]
    member = root / STAGED_MEMBER
    _write_files(member, {
        "README": "Cycle: 2\nProject code: 2012.1.00688.S\n",
        "calibration/flux.csv": "ms,field,spw,I\n",
        f"calibration/{m}.session_1.caltables.tar.gz": pipeline_caltables_tgz(ANALYSIS_EBS),
        f"calibration/{eb}.ms.calapply.txt": pipeline_calapply(eb),
        f"calibration/{eb}.ms.flagversions.tar.gz": pipeline_flagversions_tgz(eb),
        f"calibration/{eb}_flagtemplate.txt": "mode='manual'\n",
        "log/casapy-20140612-205108.log": pipeline_casa_log("20140612"),
        f"log/{m}.casa_commands.log": f"hifa_importdata(vis=['{eb}'])\n",
        f"qa/{m}.weblog.tar.gz": pipeline_weblog_tgz("20140612T205108"),
        "script/PPR_uid___A002_X5ce05d_X18e.xml": pipeline_ppr_xml(
            proposal=ANALYSIS_PROJECT, ous=m, sb_status="uid___A002_X5ce05d_X18e",
            ebs=ANALYSIS_EBS, recipe="procedure_hifa_cal.xml", sb_title="IRAS_16293_b7"),
        "script/casa_piperestorescript.py": "h_init()\nhifa_restoredata()\n",
        "script/casa_pipescript.py": "h_init()\n",
        "script/scriptForPI.py": pi_script_text(),
    })
    write_pipeline_fits(member / "product" / f"{m}.J1625-2527_ph.spw0.mfs.I.pbcor.fits")
    cal = member / "calibrated"
    for eb in ANALYSIS_EBS:
        write_asdm(member / "raw" / f"{eb}.asdm.sdm", eb)
        (cal / "rawdata").mkdir(parents=True, exist_ok=True)
        (cal / "rawdata" / eb).symlink_to(f"../../raw/{eb}.asdm.sdm")
        make_ms(cal / f"{eb}.ms.split.cal")
    (cal / "products").symlink_to("../calibration")
    _write_files(cal, {
        "working/casa_pipescript.py": "h_init()\nhifa_restoredata()\n",
        "working/casa_commands.log": "hifa_restoredata()\n",
        "working/casa-20171205-101010.log": pipeline_casa_log("20171205"),
        "working/pipeline-20171205T101010/html/index.html": "<html>restore</html>\n",
        "scriptForImaging.py": "tclean(vis='calibrated_final.ms', imagename='IRAS16293_cont')\n",
        "casa-20171206-090000.log": pipeline_casa_log("20171206"),
        "tclean.last": "vis = 'calibrated_final.ms'\n",
    })
    for name in ("IRAS16293_cont.image.pbcor.fits", "IRAS16293_cont.flux.fits",
                 "IRAS16293_line.image.pbcor.fits", "IRAS16293_line.pb.fits"):
        write_pipeline_fits(cal / name)
    make_image(cal / "IRAS16293_cont.image")
    make_pb_image(cal / "IRAS16293_cont.flux")  # has its FITS twin: not shipped
    make_mask_image(cal / "IRAS16293_cont.mask")  # no FITS twin: shipped as .mask.tgz
    return root
