"""Hypothesis strategies: manual reduction trees as reducers leave them (docs/domain.md §2.3,
§2.5, §3.1; docs/layout-rules.md "Manual reductions").

A drawn :class:`Reduction` is a description (relative path -> bytes, directories, links, FIFOs)
plus what it is meant to be; :meth:`Reduction.write` puts it on disk below a fresh directory.
Nothing here needs casatools: calibration tables and CASA images are directories holding a few
fake bytes in ``table.dat`` and a real ``table.info`` (its first line ``Type = …`` is what qa2
reads); FITS products are tiny real images written by astropy (``*.pbcor.fits`` with its
``*.pb.fits`` / ``*.flux.fits`` partner of the same shape, PB values in [0, 1], masks in {0, 1}).

* :func:`reductions` - manual interferometric reductions (the ``interferometric`` plugin's input)
  in the JAO layout (``Calibration_X…/`` per EB + ``Imaging/``), the NRAO layout (the same plus
  one ``QA2/`` folder), or flat; ``invalid=True`` draws some the plugin must refuse.
* :func:`tp_reductions` - manual Total Power reductions (``totalpower`` plugin), for appends.

The options that hit known open bugs (internal file links, upper-case product suffixes) are off
unless asked for, so a property over valid trees is not drowned by them; tests/test_properties.py
keeps each known bug as an explicit xfail regression.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

PROJECT = "2015.1.00123.S"
MANUAL_STYLES = ("cycle3-nopipe", "cycle0-nopipe", "cycle1-nopipe", "cycle2-nopipe", "cycle7-nopipe",
                 "cycle8-nopipe", "")
PIPE_STYLES = ("cycle2-pipe1", "cycle3-pipe1", "cycle4-pipe")
CALTABLE_SUFFIXES = (".ms.tsys", ".ms.wvr", ".ms.antpos", ".ms.split.bandpass", ".ms.split.phase_int",
                     ".ms.split.ampli_inf", ".ms.split.flux_inf", ".ms.split.phase_inf")
TP_CALTABLE_SUFFIXES = (".ms.tsys", ".ms.sky")
# Image names as reducers type them: plain, with '+'/'-', a space, non-ASCII.
TARGETS = ("NGC5921", "IRC+10216", "M100_cont", "J1924-2914_spw17", "Orion KL", "ρ_Oph", "Sgr_B2-N")
# Unclassified or left-out extras a reducer leaves behind.
EXTRAS = ("notes.txt", "todo list.txt", "Ähnlich.dat", "plotms.last", "tclean.saved",
          "scriptForImaging.py~", "helper.pyc", "README.header.txt", "scriptForPI.py",
          "mstransform.last", "flags_manual.txt", "run.sh")


def table_info(kind: str, subtype: str = "") -> bytes:
    """``table.info`` as casacore writes it: the Type line first."""
    return f"Type = {kind}\nSubType = {subtype}\n\n".encode()


def table(prefix: str, kind: str, subtype: str = "", size: int = 16) -> dict[str, bytes]:
    """A fake casacore table: ``table.dat`` (a few bytes), ``table.info``, one column file."""
    return {f"{prefix}/table.dat": bytes(range(size)), f"{prefix}/table.info": table_info(kind, subtype),
            f"{prefix}/table.f0": b"\x01\x02" * size}


# ----------------------------------------------------------------------------------- FITS


@functools.lru_cache(maxsize=64)
def fits_bytes(role: str, shape: tuple[int, ...], seed: int = 0) -> bytes:
    """A tiny real FITS image (astropy): role pbcor (Jy/beam sky), pb/flux (values in [0, 1],
    no BUNIT), mask ({0, 1}), sd (TP image in K)."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    ny, nx = shape[-2], shape[-1]
    y, x = np.mgrid[0:ny, 0:nx]
    r2 = ((x - nx / 2) ** 2 + (y - ny / 2) ** 2) / (max(nx, ny) / 2) ** 2
    if role in ("pb", "flux"):
        data = np.broadcast_to(np.exp(-r2), shape).astype(np.float32)
    elif role == "mask":
        data = np.broadcast_to((r2 < 0.3).astype(np.float32), shape).copy()
    else:
        data = (rng.normal(0, 1e-3, shape) + 0.05 * np.exp(-r2 * 8)).astype(np.float32)
    hdu = fits.PrimaryHDU(data)
    h = hdu.header
    h["BTYPE"] = "Intensity"
    h["OBJECT"] = "NGC5921"
    h["TELESCOP"] = "ALMA"
    if role in ("pbcor", "image"):
        h["BUNIT"] = "Jy/beam"
    elif role == "sd":
        h["BUNIT"] = "K"
    axes = [("RA---SIN", 230.4866, -1e-4), ("DEC--SIN", 5.07, 1e-4), ("FREQ", 2.305e11, 1e6),
            ("STOKES", 1.0, 1.0)]
    for i, (ctype, crval, cdelt) in enumerate(axes[:len(shape)], start=1):
        h[f"CTYPE{i}"], h[f"CRVAL{i}"], h[f"CDELT{i}"] = ctype, crval, cdelt
        h[f"CRPIX{i}"] = 1.0
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------------- trees


@dataclass
class Reduction:
    """A reduction to write: files (bytes; ``None`` a directory), file links (link -> target,
    both relative to ORIGPATH), FIFOs; what it is meant to be (``kind``: ``valid`` or why the
    plugin must refuse it) and how it is packaged (``style``)."""

    files: dict[str, bytes | None]
    style: str
    ebs: tuple[str, ...]
    kind: str = "valid"
    layout: str = "flat"
    links: dict[str, str] = field(default_factory=dict)
    fifos: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.kind == "valid"

    def write(self, root: Path) -> Path:
        for rel in (*self.files, *self.links, *self.fifos):  # never a path outside ``root``
            assert rel and not rel.startswith("/") and ".." not in rel.split("/"), rel
        root.mkdir(parents=True, exist_ok=True)
        for rel, content in sorted(self.files.items()):
            path = root / rel
            if content is None:
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        for rel, target in self.links.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, path)
        for rel in self.fifos:
            os.mkfifo(root / rel)
        return root

    def _repr_pretty_(self, p, cycle) -> None:  # how Hypothesis shows a failing example
        p.text(self.describe())

    def describe(self) -> str:
        """The tree, one line per entry, for a failure message."""
        lines = [f"style={self.style!r} kind={self.kind} layout={self.layout}"]
        lines += [f"  {rel}{'/' if c is None else f' ({len(c)} B)'}" for rel, c in sorted(self.files.items())
                  if "/table." not in rel]
        lines += [f"  {rel}/  [table]" for rel in sorted({r.rsplit('/table.', 1)[0] for r in self.files
                                                           if "/table." in r})]
        lines += [f"  {rel} -> {t}" for rel, t in self.links.items()]
        lines += [f"  {rel} [fifo]" for rel in self.fifos]
        return "\n".join(lines)


hexdigits = "0123456789abcdef"
eb_uids = st.builds(lambda a, b: f"uid___A002_X{a}_X{b}",
                    st.text(hexdigits, min_size=5, max_size=6).filter(lambda s: s[0] != "0"),
                    st.text(hexdigits, min_size=1, max_size=4).filter(lambda s: s[0] != "0"))


def cal_dir(eb: str) -> str:
    return "Calibration_" + eb.rsplit("_", 1)[-1]


def log_name(day: int, sec: int) -> str:
    return f"casa-201604{day:02d}-10{sec // 60:02d}{sec % 60:02d}.log"


def pre(directory: str) -> str:
    """``directory/`` or nothing (a file straight in ORIGPATH)."""
    return f"{directory}/" if directory else ""


def _script(text: str) -> bytes:
    return f"# -*- coding: utf-8 -*-\n{text}\n".encode()


@st.composite
def products(draw, img: str, case_variants: bool = False) -> dict[str, bytes | None]:
    """Imaging products: FITS pairs (pbcor + pb/flux of one shape), masks, CASA images that are
    left out or tarred (never one qa2 would have to export: that needs casatools)."""
    out: dict[str, bytes | None] = {}
    names = draw(st.lists(st.sampled_from(TARGETS), min_size=0, max_size=2, unique=True))
    # An upper-case suffix (X.image.pbcor.FITS, X.pb.Fits) on the first image now and then. Not
    # beside a CASA image of the same name: its FITS twin is then missed (a known bug, kept in
    # tests/test_properties.py as an xfail regression).
    upper = bool(names) and (case_variants or draw(st.integers(0, 5)) == 5)
    for i, name in enumerate(names):
        shape = draw(st.sampled_from([(1, 1, 8, 8), (1, 2, 6, 10), (8, 8)]))
        stem = draw(st.sampled_from([f"{name}.image", name, f"{name}.cont"]))
        out[f"{pre(img)}{stem}.pbcor.fits"] = fits_bytes("pbcor", shape, i)
        beam = draw(st.sampled_from(["pb", "flux"]))
        beam_stem = stem.removesuffix(".image")
        out[f"{pre(img)}{beam_stem}.{beam}.fits"] = fits_bytes(beam, shape)
        if draw(st.booleans()):
            out[f"{pre(img)}{beam_stem}.mask.fits"] = fits_bytes("mask", shape)
        extras = ["", "residual", "psf", "model"] if upper and i == 0 else \
            ["", "residual", "psf", "model", "mask", "image", "pb"]
        extra = draw(st.sampled_from(extras))
        if extra == "image":  # X.image beside its pbcor FITS: superseded, left out
            out.update(table(f"{pre(img)}{beam_stem}.image", "Image"))
        elif extra == "pb":  # X.pb with its FITS twin X.pb.fits: left out
            if beam == "pb":
                out.update(table(f"{pre(img)}{beam_stem}.pb", "Image"))
        elif extra == "mask" and f"{pre(img)}{beam_stem}.mask.fits" not in out:
            out.update(table(f"{pre(img)}{beam_stem}.mask", "Image"))  # tarred: product/X.mask.tgz
        elif extra in ("residual", "psf", "model"):
            out.update(table(f"{pre(img)}{beam_stem}.{extra}", "Image"))
        if upper and i == 0:
            fits = sorted(k for k in out if k.endswith(".fits"))
            which = draw(st.sampled_from(fits))
            out[which[:-5] + draw(st.sampled_from([".FITS", ".Fits"]))] = out.pop(which)
    return out


@st.composite
def reductions(draw, *, invalid: bool = False, links: bool = True, upper_fits: bool = False,
               styles: tuple[str, ...] = MANUAL_STYLES, max_ebs: int = 3,
               exclude: frozenset[str] = frozenset()) -> Reduction:
    """A manual interferometric reduction. Valid unless ``invalid`` (then about one in three is
    broken in one of several ways the plugin or the core must refuse). ``links``: now and then a
    file link to another file of the tree (docs/contract.md: left out, the file ships once);
    ``exclude``: EBs not to use (an appended reduction is another SB). Rare extras shrink to
    absent, so a shrunk failure is a small tree."""
    ebs = draw(st.lists(eb_uids.filter(lambda e: e not in exclude), min_size=1, max_size=max_ebs,
                        unique_by=lambda e: e.rsplit("_", 1)[-1]))
    ebs = tuple(sorted(set(ebs)))
    layout = draw(st.sampled_from(["flat", "jao", "nrao"]))
    style = draw(st.sampled_from(styles))
    files: dict[str, bytes | None] = {}
    linked: dict[str, str] = {}
    flat = layout == "flat"
    img = "" if flat else draw(st.sampled_from(["Imaging", "imaging", "Imaging/final"]))
    qa_dir = {"jao": None, "nrao": draw(st.sampled_from(["QA2", "qa2", "qa"])), "flat": None}[layout]

    for n, eb in enumerate(ebs):
        cd = "" if flat else cal_dir(eb)
        files[f"{pre(cd)}{eb}.ms.scriptForCalibration.py"] = _script(f"# calibration of {eb}")
        for suffix in draw(st.lists(st.sampled_from(CALTABLE_SUFFIXES), max_size=4, unique=True)):
            files.update(table(f"{pre(cd)}{eb}{suffix}", "Calibration", "G Jones"))
        if draw(st.booleans()):
            files[f"{pre(cd)}{eb}.ms.split.fluxscale"] = b"Flux density for J1924 in SpW=0 is: 1.2\n"
        if draw(st.booleans()):  # the reducer's casa log; same name in every EB directory
            day = 18 if not flat else 18 + n
            files[f"{pre(cd)}{log_name(day, 0)}"] = f"casa log of {eb}\n".encode()
        if draw(st.booleans()):
            files[f"{pre(cd)}{eb}.asdm.sdm/ASDM.xml"] = b"<ASDM/>"
            files[f"{pre(cd)}{eb}.asdm.sdm/Main.xml"] = b"<Main/>"
        if draw(st.booleans()):
            files[f"{pre(cd)}{eb}.ms.flagversions/FLAG_VERSION_LIST"] = b"Original : flags\n"
        if draw(st.booleans()):
            files.update(table(f"{pre(cd)}{eb}.ms", "Measurement Set"))
        if draw(st.booleans()):
            files[f"{pre(cd)}{eb}.ms.listobs.txt"] = b"listobs\n"
        # QA2 material: per EB (JAO: qa2/ inside the calibration dir; NRAO: QA2/<caldir>/)
        qa_kind = draw(st.sampled_from(["none", "folder", "named", "plots"]))
        if qa_kind == "folder":
            where = f"{qa_dir}/{cal_dir(eb)}" if qa_dir else (f"{cd}/qa2" if cd else f"{eb}.qa2")
            for plot in draw(st.lists(st.sampled_from(["ampVsTime.png", "bandpass.png", "textfile.txt",
                                                       "phase vs time.PNG"]), min_size=1, max_size=3,
                                      unique=True)):
                files[f"{where}/{plot}"] = b"\x89PNG\r\n\x1a\nqa2" if "png" in plot.lower() else b"QA2\n"
        elif qa_kind == "named":
            files[f"{pre(cd)}{eb}.qa2_report.pdf"] = b"%PDF-1.4\n%qa2\n"
            files[f"{pre(cd)}{eb}.ms.weather.png"] = b"\x89PNG\r\n\x1a\nweather"
        elif qa_kind == "plots":
            files[f"{pre(cd)}{eb}.ms.tsys.plots/tsys.spw17.png"] = b"\x89PNG\r\n\x1a\ntsys"
            files[f"{pre(cd)}{eb}.ms.split.cal.qa2/amp.png"] = b"\x89PNG\r\n\x1a\namp"
    if len(ebs) > 1 and draw(st.integers(0, 9)) < 9:
        files[f"{pre(img)}scriptForFluxCalibration.py"] = _script("# flux calibration")
        if draw(st.booleans()):
            files[f"{pre(img)}allFluxes.txt"] = b"J1924-2914 spw17 1.23\n"
    if draw(st.integers(0, 9)) < 9:
        files[f"{pre(img)}scriptForImaging.py"] = _script("# imaging")
    if draw(st.booleans()):
        files[f"{pre(img)}scriptForImagingPrep.py"] = _script("# imaging prep")
    if draw(st.integers(0, 4)) == 4:
        files[f"{pre(img)}scriptForPolCalibration.py"] = _script("# pol calibration")
    if draw(st.booleans()):
        files[f"{pre(img)}{log_name(19, draw(st.integers(0, 3599)))}"] = b"imaging log\n"
    if draw(st.integers(0, 3)) == 3:
        files["Titan_ephem.eph"] = b"ephemeris\n"
    if draw(st.integers(0, 3)) == 3:
        files["QA2_Report_NGC5921_a_06_TM1.pdf"] = b"%PDF-1.4\n%qa2 report\n"
    files.update(draw(products(img, case_variants=upper_fits)))
    for extra in draw(st.lists(st.sampled_from(EXTRAS), max_size=3, unique=True)):
        where = draw(st.sampled_from(["", img, cal_dir(ebs[0]) if not flat else ""]))
        files[f"{pre(where)}{extra}"] = f"{extra}\n".encode()
    if draw(st.integers(0, 4)) == 4:
        files[".hidden_notes"] = b"hidden\n"  # never scanned
    if draw(st.integers(0, 5)) == 5:
        files["empty_dir"] = None
    if style == "cycle0-nopipe" and draw(st.booleans()):
        files.update(table(f"{pre(img)}calibrated.ms", "Measurement Set"))  # calibrated/

    if links and draw(st.integers(0, 3)) == 3:  # a file link to another file of the tree
        target = draw(st.sampled_from(sorted(k for k, v in files.items()
                                             if v is not None and "/table." not in k
                                             and not k.startswith(".") and ".asdm.sdm/" not in k
                                             and ".flagversions/" not in k)))
        where = draw(st.sampled_from(["", img, "elsewhere"]))
        name = target.rsplit("/", 1)[-1]  # a script keeps its name: linked_<EB>.ms.scriptFor… is
        prefix = "" if name.endswith(".py") else draw(st.sampled_from(["linked_", ""]))  # no uid name
        link = f"{pre(where)}{prefix}{name}"
        if link not in files:
            up = "../" * link.count("/")
            linked[link] = up + target
    red = Reduction(files, style, ebs, "valid", layout, linked)
    if invalid and draw(st.integers(0, 2)) == 0:
        red = draw(st.sampled_from(BREAKERS))(red, draw)
    return red


# ------------------------------------------------------------------ ways to break a reduction


def _no_cal_scripts(red: Reduction, draw) -> Reduction:
    files = {k: v for k, v in red.files.items() if not k.endswith(".ms.scriptForCalibration.py")}
    files.setdefault("Imaging/scriptForImaging.py", _script("# imaging"))
    return Reduction(files, red.style, red.ebs, "no_calibration_script", red.layout,
                     {k: v for k, v in red.links.items() if not k.endswith(".ms.scriptForCalibration.py")})


def _pipe_style(red: Reduction, draw) -> Reduction:
    return Reduction(red.files, draw(st.sampled_from(PIPE_STYLES)), red.ebs, "pipe_style", red.layout,
                     red.links)


def _non_uid_script(red: Reduction, draw) -> Reduction:
    files = dict(red.files)
    files["calib.ms.scriptForCalibration.py"] = _script("# not named after its EB")
    style = draw(st.sampled_from(("cycle1-nopipe", "cycle2-nopipe", "cycle3-nopipe")))
    return Reduction(files, style, red.ebs, "non_uid_script", red.layout, red.links)


def _duplicate_script(red: Reduction, draw) -> Reduction:
    files = dict(red.files)
    files["old/scriptForImaging.py"] = _script("# stale copy")
    files["new/scriptForImaging.py"] = _script("# current copy")
    return Reduction(files, red.style, red.ebs, "duplicate_script", red.layout, red.links)


def _link_outside(red: Reduction, draw) -> Reduction:
    return Reduction(red.files, red.style, red.ebs, "link_outside", red.layout,
                     {**red.links, "outside_link.txt": "/etc/hostname"})


def _fifo(red: Reduction, draw) -> Reduction:
    return Reduction(red.files, red.style, red.ebs, "fifo", red.layout, red.links, ("pipe.fifo",))


def _mixed_arrays(red: Reduction, draw) -> Reduction:
    files = dict(red.files)
    files["TP/uid___A002_Xfeed01_X1.ms.scriptForSDCalibration.py"] = _script("# sd")
    return Reduction(files, red.style, red.ebs, "mixed_arrays", red.layout, red.links)


BREAKERS = (_no_cal_scripts, _pipe_style, _non_uid_script, _duplicate_script, _link_outside, _fifo,
            _mixed_arrays)


# ----------------------------------------------------------------------------------- Total Power


@st.composite
def tp_reductions(draw, styles: tuple[str, ...] = ("cycle3-nopipe", "cycle7-nopipe"),
                  exclude: frozenset[str] = frozenset()) -> Reduction:
    """A manual Total Power reduction (plugins/totalpower/tests): per-EB
    ``<EB>.ms.scriptForSDCalibration.py``, ``scriptForSDimaging.py``, Tsys/sky tables, jyperk.csv,
    a TP image FITS, logs and QA2 plots."""
    ebs = tuple(sorted(set(draw(st.lists(eb_uids.filter(lambda e: e not in exclude), min_size=1,
                                         max_size=2, unique=True)))))
    style = draw(st.sampled_from(styles))
    files: dict[str, bytes | None] = {}
    for n, eb in enumerate(ebs):
        cd = cal_dir(eb)
        files[f"{cd}/{eb}.ms.scriptForSDCalibration.py"] = _script(f"# SD calibration of {eb}")
        for suffix in draw(st.lists(st.sampled_from(TP_CALTABLE_SUFFIXES), max_size=2, unique=True)):
            files.update(table(f"{cd}/{eb}{suffix}", "Calibration", "B TSYS"))
        if draw(st.booleans()):
            files[f"{cd}/{log_name(12, n)}"] = b"sd log\n"
        if draw(st.booleans()):
            files[f"qa2/{eb}.ms.tsys.spw17.png"] = b"\x89PNG\r\n\x1a\ntsys"
    files["Imaging/scriptForSDimaging.py"] = _script("# SD imaging")
    files["Imaging/M100_TP_spw17.sd.im.fits"] = fits_bytes("sd", (1, 4, 6, 6))
    if draw(st.booleans()):
        files["jyperk.csv"] = b"MS,Antenna,Spwid,Polarization,Factor\n"
    return Reduction(files, style, ebs, "valid", "tp")


@st.composite
def appends(draw, second: str = "interferometric") -> tuple[Reduction, Reduction, str]:
    """A 12m reduction, a second reduction of other EBs (``interferometric`` or
    ``totalpower``) to append to its package, and the append mode (member, group)."""
    first = draw(reductions(max_ebs=2))
    if second == "totalpower":
        other = draw(tp_reductions(exclude=frozenset(first.ebs)))
    else:
        other = draw(reductions(max_ebs=2, exclude=frozenset(first.ebs)))
    return first, other, draw(st.sampled_from(["member", "group"]))
