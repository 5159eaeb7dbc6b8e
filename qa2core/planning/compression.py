"""Which images the package ships compressed (docs/contract.md; docs/domain.md §6), as data.

Plugins call :func:`compression_for` from their layout; the core executor does the work.
"""

from __future__ import annotations

from qa2core.hooks.model import Action, SourceItem

# Regular files: gzip, keep the name, add .gz. *.pb.tt0.fits and *.pbcor.fits do not match.
GZIP_FILE_SUFFIXES = (".pb.fits", ".flux.fits", ".mask.fits")
# CASA image directories: tar + gzip to <name>.tgz, unless a FITS of the image is packaged.
TGZ_DIR_SUFFIXES = (".mask", ".pb", ".flux", ".flux.pbcoverage")
ALREADY_COMPRESSED = (".gz", ".tgz", ".zip", ".bz2", ".xz")


def compression_for(item: SourceItem, packaged_names: set[str]) -> tuple[Action, str] | None:
    """``(action, dest_name)`` for a PB/mask image, ``None`` when it ships as it is.

    ``packaged_names`` are the base names of the other files packaged beside it; a CASA image
    directory whose FITS export is among them ships as that export: ``None`` here too (the
    layout skips the directory).
    """
    name = item.name
    low = name.lower()  # suffixes in any letter case: X.PB.FITS is a primary beam too
    if low.endswith(ALREADY_COMPRESSED):
        return None
    if not item.is_dir and low.endswith(GZIP_FILE_SUFFIXES):
        return Action.GZIP, name + ".gz"
    if item.is_dir and item.table_type in ("Image", "") and low.endswith(TGZ_DIR_SUFFIXES):
        if low + ".fits" in {n.lower() for n in packaged_names}:
            return None
        return Action.TGZ, name + ".tgz"
    return None

