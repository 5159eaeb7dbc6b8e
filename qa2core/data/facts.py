"""What an item *is*, read from the data: the one interface plugins call, ``facts(root, item)``.

Without casatools (not installed, or failing to start offline): ``table.info`` (and an empty
``table.dat``, a broken table), FITS headers through astropy, the names. With casatools
(qa2core.data.casaenv: lazy, offline, serialised, its log relayed): measurement sets and CASA images
too, always through a scratch mirror, never the source table (docs/casa-and-io.md §5).

* measurement set: EB and SB UIDs from ``OBSERVATION/SCHEDULE`` (what ``msmd.schedule(0)``
  reads; empty on non-ALMA data) and the ``ASDM_EXECBLOCK`` subtable, else the EB in the MS
  name; the MOUS from ``ASDM_EXECBLOCK.sessionReference``; fields, intents (``STATE``) and
  spws. Only those subtables are mirrored and opened: the main table, the visibilities, never.
* CASA image: shape, unit, beam, and role (name suffix, or the pipeline's miscinfo ``type``).
* FITS: OBJECT, BUNIT, BTYPE, TELESCOP, the spectral axis, role; CHECKSUM/DATASUM verified
  where present (a read of the file).

Results are cached by (root, path, size, mtime): each item is read once per run. Scratch space
is chosen by the command (:func:`scratch_in`): ``PACKPATH.qa2/`` while packaging, a new
temporary directory for ``qa2 inspect`` and anything else.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from qa2core.data import casaenv, images
from qa2core.errors import Qa2Error
from qa2core.hooks.model import Finding, ItemType, Level, SourceItem
from qa2core.planning.rules import eb_of
from qa2core.writing.fileops import open_source

_SCRATCH: contextvars.ContextVar[Path | None] = contextvars.ContextVar("qa2_scratch", default=None)
_CACHE: dict[tuple, Facts] = {}
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 4096
MS_SUBTABLES = ("OBSERVATION", "ASDM_EXECBLOCK", "FIELD", "STATE", "SPECTRAL_WINDOW")
_UID = re.compile(r"uid://A\d{3}/X[0-9a-f]+/X[0-9a-f]+")
_ENTITY = re.compile(r'entityId="(uid://A\d{3}/X[0-9a-f]+/X[0-9a-f]+)"')


@dataclass(frozen=True)
class Facts:
    """What qa2 read about one item; empty fields were not read or are not there."""

    kind: str  # measurement_set, image, caltable, table, asdm, flagversions, fits, file
    read_with: str = "name"  # casatools, table.info, astropy, name
    table_type: str = ""
    ebs: tuple[str, ...] = ()  # sanitized EB UIDs (uid___A002_X…_X…)
    eb_source: str = ""  # where the EBs came from: schedule, ASDM_EXECBLOCK, name
    sb: str = ""
    mous: str = ""
    fields: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    spws: tuple[str, ...] = ()
    role: str = ""
    shape: tuple[int, ...] = ()
    unit: str = ""
    beam: str = ""
    object: str = ""
    btype: str = ""
    telescope: str = ""
    frequency: str = ""
    checksum: str = ""  # ok, bad: …, or "" (no CHECKSUM/DATASUM)
    notes: tuple[str, ...] = ()  # problems met while reading, CASA's SEVERE lines

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v}

    def summary(self) -> str:
        """One line: the facts that are there, ``key value`` separated by ``; ``."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if not value or f.name in ("kind", "read_with", "eb_source"):
                continue
            if f.name == "shape":
                value = "x".join(map(str, value))
            elif isinstance(value, tuple):
                value = ", ".join(map(str, value))
            if f.name == "ebs" and self.eb_source:
                value = f"{value} (from {self.eb_source})"
            parts.append(f"{f.name} {value}")
        return "; ".join(parts)


def scratch_in(where: Path | None) -> contextvars.Token:
    """Mirrors go below ``where`` (``PACKPATH.qa2/`` while packaging), or a new temporary
    directory when ``None``; returns the token to reset it with."""
    return _SCRATCH.set(where)


@contextlib.contextmanager
def scratch(where: Path | str | None) -> Iterator[None]:
    token = _SCRATCH.set(Path(where) if where is not None else None)
    try:
        yield
    finally:
        _SCRATCH.reset(token)


def facts(root: Path | str, item: SourceItem) -> Facts:
    """What ``item`` (below ``root``, ORIGPATH) is, read once per run (cached)."""
    key = (str(root), item.relpath, item.type, item.size, item.mtime_ns)
    with _CACHE_LOCK:
        known = _CACHE.get(key)
    if known is not None:
        return known
    got = _read(os.path.join(root, item.relpath), str(root), item)
    with _CACHE_LOCK:
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = got
    return got


def _read(path: str, root: str, item: SourceItem) -> Facts:
    if item.type is ItemType.ASDM:
        return Facts("asdm", ebs=tuple(filter(None, [eb_of(item.name)])), eb_source="name")
    if item.type is ItemType.FLAGVERSIONS:
        return Facts("flagversions")
    if item.type is ItemType.FILE:
        if item.name.endswith((".fits", ".fits.gz")):
            return _fits(path, item.name)
        return Facts("file")
    kind = {"Measurement Set": "measurement_set", "Image": "image",
            "Calibration": "caltable"}.get(item.table_type, "table")
    base = Facts(kind, "table.info", " / ".join(filter(None, (item.table_type,
                                                               item.table_subtype))))
    if _empty_table_dat(path):
        return _with(base, notes=("table.dat is empty: a broken table (interrupted write or "
                                  "full disk)",))
    if kind == "image":
        base = _with(base, role=images.role_of(item.name))
    if kind == "measurement_set":
        eb = eb_of(item.name)
        base = _with(base, ebs=(eb,) if eb else (), eb_source="name" if eb else "")
    if kind not in ("measurement_set", "image") or casaenv.tools() is None:
        return base
    try:
        return _with_casa(path, root, item, base)
    except (OSError, RuntimeError, Qa2Error) as exc:
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _with(base, notes=(*base.notes, f"casatools could not read it: {line}"))


def _with(f: Facts, **changes) -> Facts:
    return replace(f, **changes)


def _empty_table_dat(path: str) -> bool:
    try:
        return os.stat(os.path.join(path, "table.dat")).st_size == 0
    except OSError:
        return False


@contextlib.contextmanager
def _scratch_parent() -> Iterator[Path | None]:
    """The parent of this read's scratch directory; one qa2 made for it goes again if empty."""
    where = _SCRATCH.get()
    made = where is not None and not where.exists()
    try:
        yield where
    finally:
        if made:
            with contextlib.suppress(OSError):
                where.rmdir()


def _with_casa(path: str, root: str, item: SourceItem, base: Facts) -> Facts:
    ct = casaenv.tools()
    with _scratch_parent() as parent, casaenv.session(parent) as run:
        if base.kind == "measurement_set":
            got = _ms(ct, path, root, run.dir, base)
        else:
            got = _image(ct, path, root, run.dir, base, item.name)
    casaenv.relay(path, run.severe)
    return _with(got, read_with="casatools", notes=(*got.notes, *run.severe))


def _open(ct, mirror: str):
    tb = ct.table()
    tb.open(mirror, nomodify=True)
    return tb


def _ms(ct, path: str, root: str, work: Path, base: Facts) -> Facts:
    found: dict[str, object] = {}
    for sub in MS_SUBTABLES:
        if not os.path.isfile(os.path.join(path, sub, "table.dat")):
            continue
        mirror = str(work / sub)
        casaenv.mirror(os.path.join(path, sub), mirror, root)
        tb = _open(ct, mirror)
        try:
            found[sub] = _ms_subtable(tb, sub)
        finally:
            tb.close()
    schedule = found.get("OBSERVATION") or {}
    execblock = found.get("ASDM_EXECBLOCK") or {}
    ebs = tuple(dict.fromkeys(_sanitize(u) for u in (*execblock.get("ebs", ()),
                                                     *schedule.get("ebs", ()))))
    eb_source = ("ASDM_EXECBLOCK" if execblock.get("ebs") else "schedule") if ebs else ""
    return _with(base, ebs=ebs or base.ebs, eb_source=eb_source or base.eb_source,
                 sb=_sanitize(schedule.get("sb", "")), mous=_sanitize(execblock.get("mous", "")),
                 fields=found.get("FIELD", ()), intents=found.get("STATE", ()),
                 spws=found.get("SPECTRAL_WINDOW", ()),
                 telescope=schedule.get("telescope", ""))


def _ms_subtable(tb, sub: str):
    if tb.nrows() == 0:
        return {} if sub in ("OBSERVATION", "ASDM_EXECBLOCK") else ()
    if sub == "FIELD":
        return tuple(str(n) for n in tb.getcol("NAME"))
    if sub == "STATE":  # OBS_MODE "CALIBRATE_PHASE#ON_SOURCE,…" -> CALIBRATE_PHASE
        modes = (m.split("#")[0].strip() for cell in tb.getcol("OBS_MODE") for m in str(cell).split(","))
        return tuple(sorted({m for m in modes if m}))
    if sub == "SPECTRAL_WINDOW":
        chans, freqs = tb.getcol("NUM_CHAN"), tb.getcol("REF_FREQUENCY")
        return tuple(f"{i}: {int(n)} ch at {float(f) / 1e9:.6g} GHz"
                     for i, (n, f) in enumerate(zip(chans, freqs, strict=True)))
    if sub == "OBSERVATION":  # msmd.schedule(0); an empty cell raises there, so test first
        out: dict[str, object] = {"telescope": str(tb.getcell("TELESCOPE_NAME", 0))}
        cells = [str(c) for c in tb.getcell("SCHEDULE", 0)] if tb.iscelldefined("SCHEDULE", 0) else []
        for cell in cells:
            key, _, value = cell.partition(" ")
            if key == "SchedulingBlock" and _UID.fullmatch(value.strip()):
                out["sb"] = value.strip()
            elif key == "ExecBlock" and _UID.fullmatch(value.strip()):
                out["ebs"] = (value.strip(),)
        return out
    cols = set(tb.colnames())  # ASDM_EXECBLOCK
    ebs = tuple(str(u) for u in tb.getcol("execBlockUID")) if "execBlockUID" in cols else ()
    refs = [str(r) for r in tb.getcol("sessionReference")] if "sessionReference" in cols else []
    mous = next((m.group(1) for r in refs if (m := _ENTITY.search(r))), "")
    return {"ebs": tuple(u for u in ebs if _UID.fullmatch(u)), "mous": mous}


def _sanitize(uid: str) -> str:
    return uid.replace("uid://", "uid___").replace("/", "_") if uid else ""


def _image(ct, path: str, root: str, work: Path, base: Facts, name: str) -> Facts:
    mirror = str(work / "image")
    casaenv.mirror(path, mirror, root, data=False)
    tb = _open(ct, mirror)
    try:
        words = set(tb.keywordnames())
        info, misc, unit = (tb.getkeyword(k) if k in words else {}
                            for k in ("imageinfo", "miscinfo", "units"))
        shape = tb.getcolshapestring("map")[0] if "map" in tb.colnames() else ""
    finally:
        tb.close()
    beam = info.get("restoringbeam") if isinstance(info, dict) else None
    type_hint = str(misc.get("type", "")) if isinstance(misc, dict) else ""
    return _with(base, role=images.role_of(name, type_hint) or base.role,
                 shape=tuple(int(n) for n in re.findall(r"\d+", shape)),
                 unit=str(unit) if unit else "", beam=_beam(beam),
                 object=str(info.get("objectname", "")) if isinstance(info, dict) else "")


def _beam(beam) -> str:
    if not isinstance(beam, dict):
        return ""
    if "major" not in beam:  # per-plane beams
        return "per-plane beams"
    major, minor, pa = (f"{float(beam[k]['value']):.4g}{beam[k]['unit']}"
                        for k in ("major", "minor", "positionangle"))
    return f"{major} x {minor}, pa {pa}"


def _fits(path: str, name: str) -> Facts:
    try:
        fh = os.fdopen(open_source(path), "rb")
    except (OSError, Qa2Error) as exc:
        return Facts("fits", "astropy", notes=(f"unreadable ({exc})",))
    with fh:
        stream = images.unzipped(fh, name)
        try:
            head = images.read_head(stream)
            checksum = images.checksum_state(head, stream)
        except (ValueError, OSError, EOFError) as exc:
            return Facts("fits", "astropy", role=images.role_of(name),
                         notes=(f"not a readable FITS image: {exc}",))
    bmaj = head.get("BMAJ", None)
    beam = (f"{float(bmaj) * 3600:.4g}arcsec x {float(head.get('BMIN', 0.0)) * 3600:.4g}arcsec, "
            f"pa {float(head.get('BPA', 0.0)):.4g}deg") if bmaj not in (None, "") else ""
    return Facts("fits", "astropy", role=images.role_of(name, str(head.get("TYPE"))),
                 shape=head.shape, unit=str(head.get("BUNIT")), beam=beam,
                 object=str(head.get("OBJECT")), btype=str(head.get("BTYPE")),
                 telescope=str(head.get("TELESCOP")), frequency=images.frequency(head),
                 checksum=checksum)


# ---------------------------------------------------------------------------- rules for plugins


def ebs_without_data(root: Path | str, items: Iterable[SourceItem], scripts: Iterable[str],
                     rule: str = "script.eb_data") -> list[Finding]:
    """For ``qa2_collect`` of manual reductions: the EB of every per-EB calibration script
    (``scripts``: their paths, named ``<EB>.ms.scriptFor…``) has its ASDM or measurement set in
    the reduction: by name, else among the EBs a measurement set's own tables name. An input
    holding no ASDM or measurement set at all (scripts only) is not judged."""
    items = tuple(items)
    data = [i for i in items if i.type is ItemType.ASDM
            or (i.type is ItemType.TABLE and i.table_type == "Measurement Set")]
    by_eb = {eb: path for path in scripts if (eb := eb_of(path.rpartition("/")[2]))}
    if not data or not by_eb:
        return []
    named = {eb for i in data if (eb := eb_of(i.name))}
    missing = sorted(set(by_eb) - named)
    if missing:  # only then: the measurement sets whose names give no EB are read
        read = {eb for i in data if i.type is ItemType.TABLE and not eb_of(i.name)
                for eb in facts(root, i).ebs}
        missing = [eb for eb in missing if eb not in read]
    return [Finding(Level.WARN, rule, by_eb[eb], f"calibration script of EB {eb}, but neither "
                    f"{eb}.asdm.sdm nor a measurement set of that EB is in the reduction: is "
                    "the EB name right?") for eb in missing]
