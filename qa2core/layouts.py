"""Layout building blocks shared by plugins of manual reductions (interferometric, TP).

The kinds below are a shared vocabulary; a plugin maps its own kinds to member directories with
``dest_dir`` and lets these functions handle the ones that need more than a directory:

* ``caltable`` / ``fluxscale``: bundled per EB into ``calibration/<EB>.calibration.tgz``;
* ``calibrated_ms``: ``calibrated/<name>`` as it is (cycle0 styles);
* ``image``: a CASA PB/mask image without FITS twin, ``product/<name>.tgz``;
* ``qa_report``: ``qa/<QA directory>/…`` keeping the directory it came from;
* ``fits_image``: ``product/``, PB/mask FITS gzipped;
* ``casa_log``: ``log/``, or ``log/<its directory>/`` when two logs share a name.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from qa2core.compression import compression_for
from qa2core.model import Action, Collected, Delivery, Placement
from qa2core.rules import NameRule, classify, eb_of, in_dir_matching


def matching(delivery: Delivery, patterns: Sequence[str]) -> list[str]:
    """Relative paths of the items whose base name matches one of ``patterns``."""
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return [i.relpath for i in delivery.items if regex.match(i.name)]


def collect(delivery: Delivery, rules: Sequence[NameRule], qa_dirs: Sequence[str]) -> list[Collected]:
    """Classify every item; files below a QA directory are QA reports whatever their name."""
    collected = []
    for item in delivery.items:
        in_qa = not item.is_dir and in_dir_matching(item.relpath, qa_dirs)
        collected.append(Collected(item, "qa_report") if in_qa
                         else classify(item, rules, delivery.style))
    fits = {c.item.name for c in collected if c.kind == "fits_image" and not c.skip}
    return [decide_image(c, fits, delivery) if c.kind == "image" and not c.skip else c
            for c in collected]


def has_fits_twin(name: str, fits_names: set[str]) -> bool:
    """``X.image`` exported as ``X.image.fits`` (exportfits' habit) or ``X.fits``."""
    return bool({name + ".fits", name.removesuffix(".image") + ".fits"} & fits_names)


def decide_image(c: Collected, fits_names: set[str], delivery: Delivery) -> Collected:
    """CASA image directories ship only as compressed PB/mask images without a FITS twin."""
    if has_fits_twin(c.item.name, fits_names):
        return Collected(c.item, c.kind, skip="CASA image: its FITS export is packaged instead")
    if delivery.style.compress_pb_mask and compression_for(c.item, fits_names):
        return c
    return Collected(c.item, c.kind, skip="CASA image without a FITS export: the FITS export is "
                     "the product (run exportfits to deliver it)")


def place(delivery: Delivery, collected: Sequence[Collected], dest_dir: Mapping[str, str],
          qa_dirs: Sequence[str]) -> list[Placement]:
    placements: list[Placement] = []
    per_eb: dict[str, list[str]] = defaultdict(list)
    log_names = Counter(c.item.name for c in collected if c.kind == "casa_log")
    for c in collected:
        item, rel = c.item, c.item.relpath
        if c.kind in ("caltable", "fluxscale"):
            per_eb[eb_of(item.name) or item.name].append(rel)
            continue
        if c.kind == "calibrated_ms":
            dest, action = f"calibrated/{item.name}", Action.COPY
        elif c.kind == "image":
            dest, action = f"product/{item.name}.tgz", Action.TGZ
        elif c.kind == "qa_report":
            dest, action = f"qa/{in_dir_matching(rel, qa_dirs) or item.name}", Action.COPY
        elif c.kind == "fits_image":
            squeeze = compression_for(item, set()) if delivery.style.compress_pb_mask else None
            action, name = squeeze or (Action.COPY, item.name)
            dest = f"product/{name}"
        elif c.kind == "casa_log" and log_names[item.name] > 1:
            # Per-EB sessions started in the same second: keep them apart by their directory.
            parent = rel.rsplit("/", 2)[-2] if "/" in rel else "top"
            dest, action = f"log/{parent}/{item.name}", Action.COPY
        else:
            dest, action = f"{dest_dir[c.kind]}/{item.name}", Action.COPY
        placements.append(Placement(dest, action, (rel,), c.kind))
    for key, sources in sorted(per_eb.items()):
        name = f"{key}.calibration.tgz" if eb_of(key) == key else f"{key}.tgz"
        placements.append(Placement(f"calibration/{name}", Action.TGZ, tuple(sorted(sources)),
                                    "calibration_tables_per_eb"))
    return placements
