"""Hook implementations for manual interferometric reductions: each a few lines over rules.py."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from fnmatch import fnmatchcase

from qa2_interferometric import rules
from qa2core import (
    GENERIC,
    SPECIFIC,
    Action,
    Claim,
    Collected,
    Delivery,
    Finding,
    Level,
    PackageView,
    Placement,
    hookimpl,
)
from qa2core.compression import compression_for
from qa2core.rules import classify, eb_of, in_dir_matching

NAME = "interferometric"


def _matching(delivery: Delivery, patterns: Sequence[str]) -> list[str]:
    return [i.relpath for i in delivery.items if any(fnmatchcase(i.name, p) for p in patterns)]


@hookimpl
def qa2_detect(delivery: Delivery) -> Claim | None:
    if _matching(delivery, rules.PIPELINE_MARKERS):
        return None  # pipeline products: the pipeline plugin's input
    cal = _matching(delivery, (rules.CALIBRATION_SCRIPT,))
    if cal:
        return Claim(SPECIFIC, f"{len(cal)} per-EB calibration script(s) "
                     "(*.ms.scriptForCalibration.py)", tuple(cal[:5]))
    imaging = _matching(delivery, ("scriptForImaging.py", "*.pbcor.fits"))
    if imaging:
        return Claim(GENERIC, "imaging script or FITS products, no calibration scripts",
                     tuple(imaging[:5]))
    return None


@hookimpl
def qa2_collect(delivery: Delivery) -> list[Collected]:
    collected = []
    for item in delivery.items:
        qa_part = None if item.is_dir else in_dir_matching(item.relpath, rules.QA_DIRS)
        c = Collected(item, "qa_report") if qa_part else classify(item, rules.RULES,
                                                                   delivery.style)
        collected.append(c)
    fits = {c.item.name for c in collected if c.kind == "fits_image" and not c.skip}
    return [_decide_image(c, fits, delivery) if c.kind == "image" and not c.skip else c
            for c in collected]


def _decide_image(c: Collected, fits_names: set[str], delivery: Delivery) -> Collected:
    """CASA image directories ship only as compressed PB/mask without a FITS twin."""
    if c.item.name + ".fits" in fits_names:
        return Collected(c.item, c.kind, skip="its FITS export is packaged instead")
    if delivery.style.compress_pb_mask and compression_for(c.item, fits_names):
        return c
    return Collected(c.item, c.kind, skip="CASA image: the FITS export is the product")


@hookimpl
def qa2_layout(delivery: Delivery, collected: Sequence[Collected]) -> list[Placement]:
    placements: list[Placement] = []
    per_eb: dict[str, list[str]] = defaultdict(list)
    log_names = Counter(c.item.name for c in collected if c.kind == "casa_log")
    for c in collected:
        item, rel = c.item, c.item.relpath
        if c.kind in ("caltable", "fluxscale"):
            per_eb[eb_of(item.name) or item.name].append(rel)
        elif c.kind == "calibrated_ms":
            placements.append(Placement(f"calibrated/{item.name}", Action.COPY, (rel,),
                                        "calibrated_ms"))
        elif c.kind == "image":
            placements.append(Placement(f"product/{item.name}.tgz", Action.TGZ, (rel,),
                                        "casa_image_tgz"))
        elif c.kind == "qa_report":
            sub = in_dir_matching(rel, rules.QA_DIRS) or item.name
            placements.append(Placement(f"qa/{sub}", Action.COPY, (rel,), "qa_report"))
        elif c.kind == "fits_image":
            squeeze = compression_for(item, set()) if delivery.style.compress_pb_mask else None
            action, name = squeeze or (Action.COPY, item.name)
            placements.append(Placement(f"product/{name}", action, (rel,), "fits_image"))
        elif c.kind == "casa_log" and log_names[item.name] > 1:
            # Per-EB sessions started in the same second: keep them apart by their directory.
            parent = rel.rsplit("/", 2)[-2] if "/" in rel else "top"
            placements.append(Placement(f"log/{parent}/{item.name}", Action.COPY, (rel,),
                                        c.kind))
        else:
            placements.append(Placement(f"{rules.DEST_DIR[c.kind]}/{item.name}", Action.COPY,
                                        (rel,), c.kind))
    for key, sources in sorted(per_eb.items()):
        name = f"{key}.calibration.tgz" if eb_of(key) == key else f"{key}.tgz"
        placements.append(Placement(f"calibration/{name}", Action.TGZ, tuple(sorted(sources)),
                                    "calibration_tables_per_eb"))
    return placements


@hookimpl
def qa2_validate(view: PackageView, plugin: str) -> list[Finding] | None:
    """What scriptForPI needs from a manual package (domain.md §8.2, §8.3 rule 15)."""
    if plugin != NAME:
        return None
    findings = []
    cal = view.glob("script/*.ms.scriptForCalibration.py")
    if not cal:
        findings.append(Finding(Level.ERROR, "script.calibration", "script/",
                                "no *.ms.scriptForCalibration.py: scriptForPI stops with "
                                "'No calibration script found'"))
    if view.style.cycle <= 4:
        for path in cal:
            if not path.removeprefix("script/").startswith("uid"):
                findings.append(Finding(Level.ERROR, "script.uid_names", path,
                                        "scriptForPI of Cycles 1-4 only runs calibration "
                                        "scripts whose names start with 'uid'"))
    ebs = {eb_of(p) for p in cal} - {None}
    if len(ebs) > 1 and not view.glob(rules.SCRIPT_GLOBS["flux"]):
        findings.append(Finding(Level.WARN, "script.flux", "script/",
                                f"{len(ebs)} EBs but no scriptForFluxCalibration.py"))
    if (view.style.accepts_imagingprep and view.style.cycle >= 3
            and not view.glob(rules.SCRIPT_GLOBS["imagingprep"])):
        findings.append(Finding(Level.WARN, "script.imagingprep", "script/",
                                "no scriptForImagingPrep.py (expected from Cycle 3 on)"))
    if not view.glob(rules.SCRIPT_GLOBS["imaging"]):
        findings.append(Finding(Level.WARN, "script.imaging", "script/",
                                "no scriptForImaging.py"))
    for eb in sorted(ebs):
        if not view.glob(f"calibration/{eb}.calibration.tgz"):
            findings.append(Finding(Level.WARN, "calibration.per_eb", f"calibration/{eb}",
                                    f"no {eb}.calibration.tgz for its calibration script"))
    return findings
