"""The sections of a Cycle >= 5 member README (issue 22): HOW TO, DATA CATEGORIES and FILES.

The archive's member READMEs since Cycle 5 (docs/domain.md §2.6, S17) open with a title and
three sections; qa2 writes the same outline in its own words, after the reducer's header and
before its listing (:func:`qa2core.writing.readme.assemble`). Every item is filled from the
member directory's listing: a category, a HOW TO step or a FILES line appears only when the
files it names are there. Pure: the listing in, bytes out, the same bytes for the same input.
"""

from __future__ import annotations

import functools
import glob
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

TITLE = "ALMA Member ObsUnitSet README"
BY_QA2 = "as packaged by qa2"  # on the line below the title: how qa2's block is told from ALMA's
PLACEHOLDER = "member_ouss_id"
_PAD = 36  # FILES: the column of the meanings
_CATEGORY = 17  # DATA CATEGORIES: the column of the meanings


@dataclass(frozen=True)
class Modern:
    """What the sections say about the member besides its files. ``token`` is the member token
    of the file names (``member.uid___A001_X1284_X1ef2``, or ``member_ouss_id`` with
    placeholders); ``mous`` the sanitized MOUS (``uid___A001_X1284_X1ef2``), ``None`` with
    placeholders; ``casa_version`` the CASA to restore with, when qa2 knows it."""

    token: str
    project: str
    mous: str | None
    pipeline: bool
    casa_version: str | None = None


# (heading, ((pattern, meaning), ...)). Patterns are relative to the member directory, ``*``
# stays within one name; a file is accounted to the first pattern it matches, and a pattern
# is shown only when some file is accounted to it.
_RULES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("This README:", (("*README.txt", "this file"), ("README", "this file"))),
    ("Images, category 'product' (the numbered tars):", (
        ("product/*cont*pbcor.fits", "continuum images, primary-beam corrected"),
        ("product/*cube*pbcor.fits", "spectral cubes, primary-beam corrected"),
        ("product/*pbcor*.fits", "other primary-beam corrected images"),
        ("product/*.pb*.fits.gz", "primary beams, gzipped"),
        ("product/*.pb*.fits", "primary beams"),
        ("product/*.flux*.fits.gz", "primary beams (CASA 4 'flux' images), gzipped"),
        ("product/*.mask*.fits.gz", "clean masks, gzipped"),
        ("product/*.mask*.fits", "clean masks"),
        ("product/*alpha*.fits", "spectral index images and their errors"),
        ("product/*sd.im.fits", "single-dish images"),
        ("product/*.fits", "other FITS images"),
        ("product/*.fits.gz", "other FITS images, gzipped"),
        ("product/*.tgz", "CASA images packed with tar (in the auxiliary tar)"),
    )),
    ("Quality assurance:", (
        ("qa/*qa2_report.*", "the QA2 report: assessment and instructions"),
        ("qa/*weblog.tgz", "the pipeline web log (untar it, open index.html)"),
        ("qa/*qa0_report.*", "QA0 reports of the execution blocks"),
    )),
    ("Scripts:", (
        ("script/*scriptForPI.py", "makes the calibrated measurement sets from raw/"),
        ("script/*casa_piperestorescript.py", "pipeline restore, run by the scriptForPI"),
        ("script/*casa_pipescript.py", "the pipeline script of the reduction"),
        ("script/*pipeline_manifest.xml", "pipeline manifest: the files the restore reads"),
        ("script/*PPR*.xml", "the pipeline processing request"),
        ("script/*pprequest.xml", "the pipeline processing request"),
        ("script/*.ms.scriptForCalibration.py", "calibration of one execution block"),
        ("script/*.ms.scriptForSDCalibration.py", "single-dish calibration of one execution block"),
        ("script/*scriptForFluxCalibration.py", "flux scaling across execution blocks"),
        ("script/*scriptForPolCalibration.py", "polarization calibration"),
        ("script/*scriptForImagingPrep.py", "prepares the calibrated data for imaging"),
        ("script/*scriptForSDimaging.py", "single-dish imaging"),
        ("script/*scriptForImaging.py", "imaging (no commands when the pipeline imaged)"),
    )),
    ("Calibration:", (
        ("calibration/*auxcaltables.tgz", "auxiliary calibration tables of a session"),
        ("calibration/*caltables.tgz", "calibration tables of a session"),
        ("calibration/*auxproducts.tgz", "fluxes, antenna positions, cont.dat (for scriptForPI)"),
        ("calibration/*flagversions.tgz", "flag versions of one measurement set"),
        ("calibration/*auxcalapply.txt", "auxiliary calibrations applied to one measurement set"),
        ("calibration/*calapply.txt", "calibrations applied to one measurement set"),
        ("calibration/*flagtemplate.txt", "flag commands of one execution block"),
        ("calibration/*.calibration.tgz", "calibration tables of one execution block"),
        ("calibration/*.calibration.plots/*", "calibration plots of one execution block"),
        ("calibration/*flux.csv", "flux densities of the calibrators"),
        ("calibration/*antennapos.csv", "antenna position corrections"),
        ("calibration/*cont.dat", "continuum frequency ranges"),
        ("calibration/*jyperk*.csv", "single-dish Jy/K factors"),
        ("calibration/*.eph", "ephemerides"),
    )),
    ("Logs:", (
        ("log/*casa_commands.log", "the CASA commands of the pipeline run"),
        ("log/*.log", "CASA and pipeline logs"),
    )),
)
_OTHER = "Other files (each is named in the listing at the end):"


def matches(pattern: str, path: str) -> bool:
    """``path`` (member-relative; a trailing ``/`` marks a directory shipped whole) matches the
    FILES ``pattern``: as a shell glob, name by name (``*`` never crosses a ``/``), case kept."""
    names, parts = path.rstrip("/").split("/"), pattern.split("/")
    return len(names) == len(parts) and all(map(fnmatchcase, names, parts))


def has_fits(listing: Sequence[str]) -> bool:
    """A file under ``product/`` ends ``.fits`` or ``.fits.gz`` (any case): the package has a
    'product' category, and ``qa2 tar`` writes FITS volumes."""
    return any(p.startswith("product/") and not p.endswith("/")
               and p.lower().endswith((".fits", ".fits.gz")) for p in listing)


def files_lines(paths: Sequence[str]) -> list[tuple[str, str, str]]:
    """(heading, pattern, meaning) of each FILES line: each file is accounted to the first rule
    it matches, a rule is shown when some file is accounted to it, then one line per top
    directory and depth for the files (and directories shipped whole) no rule describes."""
    used: set[int] = set()
    others: dict[tuple[str, int], int] = {}
    for path in {p for p in paths if p.strip("/")}:
        names = path.rstrip("/").split("/")
        rule = None if path.endswith("/") else next(
            (i for i in _candidates(len(names), names[0]) if matches(_FLAT[i][1], path)), None)
        if rule is not None:
            used.add(rule)
        else:
            key = (names[0], len(names)) if len(names) > 1 else ("", 1)
            others[key] = others.get(key, 0) + 1
    out = [_FLAT[i] for i in sorted(used)]
    rest = {"/".join([glob.escape(top)] * bool(top) + ["*"] * (depth - bool(top))): count
            for (top, depth), count in others.items()}
    out += [(_OTHER, pattern, f"{count} more entr{'ies' if count > 1 else 'y'}")
            for pattern, count in sorted(rest.items())]
    return out


_FLAT = tuple((heading, pattern, meaning) for heading, rules in _RULES for pattern, meaning in rules)


@functools.lru_cache(maxsize=1024)
def _candidates(depth: int, top: str) -> tuple[int, ...]:
    """The rules (indices into ``_FLAT``, in order) a path ``depth`` names deep under ``top``
    may match: a listing of 200,000 QA plots is read in well under a second."""
    return tuple(i for i, (_h, pattern, _m) in enumerate(_FLAT) if pattern.count("/") + 1 == depth
                 and fnmatchcase(top, pattern.split("/")[0]))


def modern_sections(listing: Sequence[str], modern: Modern) -> bytes:
    """The title and the HOW TO, DATA CATEGORIES and FILES sections for a member directory
    holding ``listing`` (member-relative final names, as the README's listing shows them)."""
    from qa2core.writing.readme import visible

    token, project = visible(modern.token), visible(modern.project)
    stem = f"{project}_{visible(modern.mous) if modern.mous else token}"
    files = sorted({p for p in listing if p.strip("/") and not p.endswith("/")})
    fits = has_fits(listing)

    def present(pattern: str) -> list[str]:
        top, depth = pattern.split("/")[0] + "/", pattern.count("/")
        return [visible(p) for p in files if p.startswith(top) and p.count("/") == depth
                and matches(pattern, p)]

    lines = [TITLE, "=" * len(TITLE), f"{token} ({project}) {BY_QA2}: what it holds, how to use it", ""]
    lines += _heading("HOW TO")
    if fits:
        lines += ["* Get the FITS images (category 'product'):",
                  f"     untar every {stem}_NNN_of_MMM.tar in one directory",
                  "     (NNN = 001 to MMM), or download single files of the 'product' category"]
    weblogs = present("qa/*weblog.tgz")
    reports = [(p, "QA2 report") for p in present("qa/*qa2_report.*")]
    reports += [(p, "pipeline web log") for p in weblogs]
    if reports:
        lines += ["* Check the quality and the processing of the data:",
                  f"     untar {stem}_auxiliary.tar (or download single files of the",
                  "     'auxiliary' category), then read"]
        lines += [f"       {p} ({what})" for p, what in reports]
        lines += ["     (untar a web log, then open its index.html)"] * bool(weblogs)
    pi = present("script/*scriptForPI.py")
    if pi:
        pi = [p for p in pi if p == f"script/{token}.scriptForPI.py"] or pi
        casa = f"CASA {visible(modern.casa_version)}" if modern.casa_version else (
            "the CASA version the header above names")
        lines += ["* Create the calibrated measurement sets (MS):",
                  f"     1) untar {stem}_auxiliary.tar and the member's",
                  "        <EB>.asdm.sdm.tar files in one directory: the ASDMs go into raw/, beside script/",
                  f"     2) use {casa}" + (", with the ALMA pipeline" if modern.pipeline else ""),
                  f"     3) cd script; casa {'--pipeline ' * modern.pipeline}-c {pi[0].split('/', 1)[1]}"]
        if present("qa/*qa2_report.*"):
            lines.append("     The instructions in the QA2 report say more.")
    lines += ["", *_heading("DATA CATEGORIES")]
    lines.append(_category("auxiliary", "scripts, calibration tables, QA reports, logs: the auxiliary tar"))
    if fits:
        lines.append(_category("product", "FITS images of the targets and calibrators: the numbered tars"))
    lines.append(_category("raw", "the ASDMs, <EB>.asdm.sdm.tar: not in this package"))
    lines += ["", *_heading("FILES")]
    lines += ["The kinds of files in this directory, as patterns relative to it:"]
    heading = None
    for group, pattern, meaning in files_lines(listing):
        if group != heading:
            lines.append(group)
            heading = group
        lines.append(f"     {visible(pattern).ljust(_PAD)}  {meaning}")
    return "".join(line + "\n" for line in lines).encode()


def _heading(name: str) -> list[str]:
    return [name, "=" * len(name)]


def _category(name: str, meaning: str) -> str:
    return f"* {name.ljust(_CATEGORY)}{meaning}"
