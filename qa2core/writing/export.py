"""Product images that exist only as CASA images are exported to FITS (docs/layout-rules.md
"Exports").

Planning (manual layouts, qa2core.planning.layouts): a CASA image ``X.image.pbcor``, ``X.pbcor``,
``X.pb``, ``X.flux`` or ``X.image`` (the last only when no primary-beam-corrected version of it
exists) with no FITS of it in the reduction becomes ``product/X….fits``, action
:attr:`~qa2core.hooks.model.Action.EXPORT`; a PB name's export is then gzipped like any PB FITS (dest
``product/X.pb.fits.gz``: export, then gzip). Without casatools the plan keeps the old way
(``X.pb.tgz``; an ``X.image.pbcor`` is left out) and each such image is a WARN naming the
``exportfits`` call to run.

Execution (qa2core.writing.execute, copy and hard modes): casatools' ``ia.tofits`` with exportfits'
conventions (velocity=False, optical=False, bitpix=-32, stokeslast=True, dropdeg=False,
history=True), on a scratch mirror of the image in ``PACKPATH.qa2/partial/export/`` (never the
source), one export at a time (casatools is not thread-safe). The FITS ``DATE`` card and the
file's mtime are the image's newest file time, so two runs give the same bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from qa2core.data import casaenv
from qa2core.errors import Qa2Error
from qa2core.hooks.model import Collected, Delivery, Finding, ItemType, Level, SourceItem
from qa2core.planning import paths
from qa2core.planning.compression import GZIP_FILE_SUFFIXES
from qa2core.planning.styles import Style
from qa2core.writing import fileops

EXPORTED = (".image.pbcor", ".pbcor", ".pb", ".flux", ".image")
TOFITS = {"velocity": False, "optical": False, "bitpix": -32, "minpix": 0, "maxpix": -1,
          "overwrite": False, "dropdeg": False, "deglast": False, "dropstokes": False,
          "stokeslast": True, "wavelength": False, "airwavelength": False, "history": True}


def available() -> bool:
    """casatools is importable and starts offline (imported on the first call)."""
    return casaenv.tools() is not None


def twin(item: SourceItem, fits_names: set[str]) -> bool:
    """A FITS of this CASA image is in the reduction (``X.fits``, ``X.fits.gz``, or exportfits'
    habit for ``X.image``: ``X.fits``)."""
    name, have = item.name.lower(), {n.lower() for n in fits_names}  # X.image.FITS is one too
    return bool({name + ".fits", name + ".fits.gz", name.removesuffix(".image") + ".fits"} & have)


def superseded(item: SourceItem, fits_names: set[str], images: set[str]) -> bool:
    """``X.image`` whose primary-beam-corrected image (CASA or FITS) is there: that is the product."""
    name = item.name
    stem = name.removesuffix(".image")
    fits = {n.lower() for n in fits_names}  # any letter case, as the plugins' FITS rules
    return name.endswith(".image") and bool(
        {name + ".pbcor", stem + ".pbcor"} & images or
        {(name + ".pbcor.fits").lower(), (stem + ".pbcor.fits").lower()} & fits)


def target(item: SourceItem, style: Style) -> str | None:
    """The FITS name a product CASA image is exported to, or ``None`` when it is none."""
    if item.type is not ItemType.TABLE or item.table_type not in ("Image", ""):
        return None
    if not item.name.endswith(EXPORTED):
        return None
    fits = item.name + ".fits"
    return fits + ".gz" if style.compress_pb_mask and fits.endswith(GZIP_FILE_SUFFIXES) else fits


def exportfits_call(name: str) -> str:
    fits = name + ".fits"
    return (f"exportfits(imagename='{name}', fitsimage='{fits}', velocity=False, optical=False, "
            "bitpix=-32, stokeslast=True, dropdeg=False)")


def warnings(delivery: Delivery, collected: Sequence[Collected]) -> list[Finding]:
    """For ``qa2_collect`` of manual reductions: without casatools, every CASA image qa2 would
    have exported is a WARN naming it and the exportfits call that makes its FITS."""
    fits = {c.item.name for c in collected if c.kind == "fits_image" and not c.skip}
    images = {c.item.name for c in collected if c.kind == "image"}
    todo = [c.item for c in collected if c.kind == "image" and target(c.item, delivery.style)
            and not twin(c.item, fits) and not superseded(c.item, fits, images)]
    if not todo or available():
        return []
    why = casaenv.reason()
    return [Finding(Level.WARN, "product.export", item.relpath,
                    f"CASA image without a FITS export and qa2 cannot export it ({why}): run "
                    f"{exportfits_call(item.name)} in its directory, then package again")
            for item in todo]


# ---------------------------------------------------------------------------- execution


def export_image(src: str, dst: str, root: str, scratch: Path,
                 item: SourceItem | None = None) -> fileops.Copied:
    """Write ``dst`` (``.fits``, or ``.fits.gz``: gzipped after the export) from the CASA image
    ``src`` through a scratch mirror below ``scratch``. Raises SourceChanged when the image
    changes meanwhile, Qa2Error when casatools cannot export it."""
    ct = casaenv.tools()
    if ct is None:
        raise Qa2Error(f"{src}: cannot export to FITS: {casaenv.reason()} [product.export]")
    size, newest = fileops.tree_fingerprint(fileops.walk_tree(src, root))
    if item is not None and (size, newest) != (item.size, item.mtime_ns):
        raise fileops.changed(src)
    os.makedirs(scratch, exist_ok=True)
    out_dir = tempfile.mkdtemp(prefix="qa2-export-", dir=scratch)
    try:
        fits = dst if not dst.endswith(".gz") else os.path.join(out_dir, "export.fits")
        with casaenv.session(scratch) as run:
            mirror = str(run.dir / "image")
            casaenv.mirror(src, mirror, root)
            ia = ct.image()
            try:
                ia.open(mirror)
                done = ia.tofits(outfile=fits, **TOFITS)
            except RuntimeError as exc:
                done = False
                run.severe.append(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            finally:
                ia.done()
        casaenv.relay(src, run.severe if done else [])
        if not done or not os.path.isfile(fits):
            detail = "; ".join(filter(None, run.severe)).replace(mirror, src) or \
                "ia.tofits gave no file"  # named by the source, never qa2's scratch copy
            raise Qa2Error(f"{src}: FITS export failed: {detail} [product.export]")
        _stamp(fits, newest)
        if fits != dst:
            result = fileops.gzip_file(fits, dst)
        else:
            result = fileops.Copied(fileops.hash_file(dst), os.path.getsize(dst), 0, 0, "export")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if fileops.tree_fingerprint(fileops.walk_tree(src, root)) != (size, newest):
        raise fileops.changed(src)
    return fileops.Copied(result.sha256, result.size, size, newest, "export")


def probe(src: str, root: str) -> str:
    """'' when casatools opens the CASA image ``src`` (through a scratch mirror, never in
    place); else the line that refuses the run. Every mode runs it before writing, so the
    rehearsal refuses exactly what the real export would, with the same words."""
    ct = casaenv.tools()
    if ct is None:
        return f"{src}: cannot export to FITS: {casaenv.reason()} [product.export]"
    from qa2core.data import facts

    with facts._scratch_parent() as parent, casaenv.session(parent) as run:
        mirror = str(run.dir / "image")
        try:
            casaenv.mirror(src, mirror, root)
        except (OSError, Qa2Error) as exc:
            return f"{src}: cannot read the CASA image for its FITS export ({exc}) [product.export]"
        ia = ct.image()
        try:
            ok = bool(ia.open(mirror))
        except RuntimeError as exc:
            ok = False
            run.severe.append(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        finally:
            ia.done()
    if ok:
        return ""
    detail = "; ".join(filter(None, run.severe)).replace(mirror, src) or "casatools cannot open it"
    return f"{src}: not a CASA image casatools can open for its FITS export: {detail} [product.export]"


def _stamp(fits: str, mtime_ns: int) -> None:
    """The ``DATE`` card and the file's times become the image's newest file time."""
    when = datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    with open(fits, "r+b") as fh:
        head = fh.read(36 * 80 * 4)
        for at in range(0, len(head) - 79, 80):
            card = head[at:at + 80]
            if card.startswith(b"END     "):
                break
            if card.startswith(b"DATE    ="):
                new = f"DATE    = '{when}' / Date FITS file was written (the image's time)"
                fh.seek(at)
                fh.write(new.ljust(80).encode("ascii"))
                break
    os.utime(fits, ns=(mtime_ns, mtime_ns))


def written(executor, entry, dst: str):
    """The executor's result for one planned export (qa2core.writing.execute calls it)."""
    from qa2core.writing import journal
    from qa2core.writing.execute import EntryResult, Written, fingerprint

    scratch = paths.partial_dir(Path(executor.pack)) / "export"
    done = export_image(entry.sources[0], dst, executor.root, scratch,
                        entry.items[0] if entry.items else None)
    os.utime(dst, ns=(done.src_mtime_ns, done.src_mtime_ns))
    st = os.lstat(dst)
    rel = f"{executor.member_rel}/{entry.dest}"
    record = journal.Entry(fingerprint(entry), str(executor.mode), done.how, done.sha256,
                           st.st_size, st.st_mtime_ns)
    return EntryResult(entry.dest, done.how, (Written(rel, done.sha256, st.st_size),),
                       ((rel, record),))
