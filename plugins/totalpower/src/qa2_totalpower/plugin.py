"""Hook implementations for manual Total Power reductions: each a few lines over rules.py."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from fnmatch import fnmatchcase

from qa2_totalpower import rules
from qa2core import (
    OVERRIDE,
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

NAME = "totalpower"


def _matching(delivery: Delivery, patterns: Sequence[str]) -> list[str]:
    return [i.relpath for i in delivery.items if any(fnmatchcase(i.name, p) for p in patterns)]


def _is_pipeline(delivery: Delivery) -> bool:
    """Pipeline products, or a staged/packaged tree (its OUS placeholder chain) given as input.

    ``qa2 verify`` looks at a package, where the chain is expected: there only the pipeline
    markers decline, so a manual TP package is still recognised and checked by these rules.
    """
    if _matching(delivery, rules.PIPELINE_MARKERS):
        return True
    return delivery.options.purpose != "verify" and any(
        rules.PLACEHOLDER_CHAIN.search(i.relpath) for i in delivery.items)


@hookimpl
def qa2_detect(delivery: Delivery) -> Claim | None:
    """SD generator scripts decide, over any interferometric claim (original: 'TP mode')."""
    if _is_pipeline(delivery):
        return None  # pipeline products or a staged tree: the pipeline plugin's input
    sd = _matching(delivery, rules.DETECT_PATTERNS)
    if not sd:
        return None
    return Claim(OVERRIDE, f"{len(sd)} Total Power (single-dish) script(s) "
                 "(*.scriptForSDCalibration.py, scriptForSDimaging.py)", tuple(sd[:5]))


@hookimpl
def qa2_collect(delivery: Delivery) -> list[Collected]:
    collected = []
    for item in delivery.items:
        qa_part = None if item.is_dir else in_dir_matching(item.relpath, rules.QA_DIRS)
        collected.append(Collected(item, "qa_report") if qa_part
                         else classify(item, rules.RULES, delivery.style))
    fits = {c.item.name for c in collected if c.kind == "fits_image" and not c.skip}
    calibrated = {c.item.name for c in collected if c.kind == "calibrated_ms" and not c.skip}
    out = []
    for c in collected:
        if c.kind == "image" and not c.skip:
            c = _decide_image(c, fits, delivery)
        elif c.kind == "calibrated_ms" and not c.skip:
            c = _decide_calibrated(c, calibrated)
        out.append(c)
    return out


def _fits_twin(name: str, fits_names: set[str]) -> bool:
    """``X.image`` is exported as ``X.image.fits`` (exportfits default) or ``X.fits``."""
    stem = name.removesuffix(".image")
    return bool({name + ".fits", stem + ".fits"} & fits_names)


def _decide_image(c: Collected, fits_names: set[str], delivery: Delivery) -> Collected:
    """CASA images ship as their FITS export; only a PB/mask without one ships tarred."""
    if _fits_twin(c.item.name, fits_names):
        return Collected(c.item, c.kind, skip="CASA image: its FITS export is packaged instead")
    if delivery.style.compress_pb_mask and compression_for(c.item, fits_names):
        return c
    return Collected(c.item, c.kind, skip="CASA image without a FITS export: the FITS export is "
                     "the product (run exportfits to deliver it)")


def _decide_calibrated(c: Collected, calibrated: set[str]) -> Collected:
    """``<EB>.ms.cal.jy`` (Jy) supersedes ``<EB>.ms.cal`` (K) of the same EB."""
    if c.item.name + ".jy" in calibrated:
        return Collected(c.item, c.kind, skip=f"superseded by {c.item.name}.jy (Jy/K applied)")
    return c


@hookimpl
def qa2_layout(delivery: Delivery, collected: Sequence[Collected]) -> list[Placement]:
    placements: list[Placement] = []
    per_eb: dict[str, list[str]] = defaultdict(list)
    log_names = Counter(c.item.name for c in collected if c.kind == "casa_log")
    for c in collected:
        item, rel = c.item, c.item.relpath
        if c.kind == "caltable":
            per_eb[eb_of(item.name) or item.name].append(rel)
        elif c.kind == "calibrated_ms":
            placements.append(Placement(f"calibrated/{item.name}", Action.COPY, (rel,), c.kind))
        elif c.kind == "image":
            placements.append(Placement(f"product/{item.name}.tgz", Action.TGZ, (rel,),
                                        "casa_image_tgz"))
        elif c.kind == "qa_report":
            sub = in_dir_matching(rel, rules.QA_DIRS) or item.name
            placements.append(Placement(f"qa/{sub}", Action.COPY, (rel,), c.kind))
        elif c.kind == "fits_image":
            squeeze = compression_for(item, set()) if delivery.style.compress_pb_mask else None
            action, name = squeeze or (Action.COPY, item.name)
            placements.append(Placement(f"product/{name}", action, (rel,), c.kind))
        elif c.kind == "casa_log" and log_names[item.name] > 1:
            # Per-EB sessions started in the same second: keep them apart by their directory.
            parent = rel.rsplit("/", 2)[-2] if "/" in rel else "top"
            placements.append(Placement(f"log/{parent}/{item.name}", Action.COPY, (rel,), c.kind))
        else:
            placements.append(Placement(f"{rules.DEST_DIR[c.kind]}/{item.name}", Action.COPY,
                                        (rel,), c.kind))
    for key, sources in sorted(per_eb.items()):
        name = f"{key}.calibration.tgz" if eb_of(key) == key else f"{key}.tgz"
        placements.append(Placement(f"calibration/{name}", Action.TGZ, tuple(sorted(sources)),
                                    "calibration_tables_per_eb"))
    return placements


# ---------------------------------------------------------------------------- validation


def _names(paths: Sequence[str]) -> str:
    return ", ".join(p.removeprefix("script/") for p in paths)


def _mixed_arrays(view: PackageView) -> list[Finding]:
    sd = [f for f in view.files if any(fnmatchcase(f, f"script/{p}") for p in rules.DETECT_PATTERNS)]
    interferometric = view.glob(f"script/{rules.IF_CALIBRATION}")
    if not (sd and interferometric):
        return []
    return [Finding(Level.ERROR, "script.mixed_arrays", "script/",
                    f"Total Power and interferometric calibration scripts in one reduction (one "
                    f"MOUS is one array): SD scripts {_names(sd)}; interferometric scripts "
                    f"{_names(interferometric)}; package each array's MOUS on its own")]


def _nonstandard(view: PackageView) -> list[Finding]:
    known = (*rules.STANDARD_IN_SCRIPT, f"script/{rules.IF_CALIBRATION}")
    return [Finding(Level.WARN, "script.nonstandard", path,
                    f"non-standard script {path.removeprefix('script/')} packaged in script/ "
                    "(not a *.scriptForSDCalibration.py nor scriptForSDimaging.py; scriptForPI "
                    "does not run it)")
            for path in view.glob("script/*.py")
            if not any(fnmatchcase(path, p) for p in known)]


def _calibration_scripts(view: PackageView) -> tuple[list[Finding], set[str]]:
    """§8.2 rule 6 for TP: scriptForPI runs ``*uid*.ms.scriptForSDCalibration.py`` per EB."""
    runnable = view.glob(f"script/{rules.PI_RUNS}")
    findings = []
    if not runnable:
        findings.append(Finding(Level.ERROR, "script.sd_calibration", "script/",
                                "no <EB>.ms.scriptForSDCalibration.py: scriptForPI stops with "
                                "'No calibration script found'"))
    for path in view.glob(f"script/{rules.SD_CALIBRATION}"):
        if path not in runnable:
            findings.append(Finding(Level.WARN, "script.sd_calibration_name", path,
                                    "scriptForPI only runs *uid*.ms.scriptForSDCalibration.py; "
                                    "name it <EB>.ms.scriptForSDCalibration.py"))
    return findings, {eb for p in runnable if (eb := eb_of(p.removeprefix("script/")))}


def _per_eb(view: PackageView, scripted: set[str]) -> list[Finding]:
    """Each EB with calibration tables has its script, and each script its tables (§8.3 r. 15)."""
    tables: dict[str, str] = {}
    for path in view.glob("calibration/*.calibration.tgz"):
        eb = eb_of(path)
        if eb and path == f"calibration/{eb}.calibration.tgz":
            tables[eb] = path
    interferometric = {eb_of(p) for p in view.glob(f"script/{rules.IF_CALIBRATION}")}
    findings = [Finding(Level.ERROR, "script.sd_calibration_per_eb", path,
                        f"calibration tables of EB {eb} but no {eb}.ms.scriptForSDCalibration.py "
                        "to recreate them")
                for eb, path in sorted(tables.items()) if eb not in scripted | interferometric]
    for path in view.glob("product/*"):
        eb = eb_of(path)
        if eb and f"{eb}.ms" in path and eb not in scripted:  # "<uid>.ms": surely an EB
            findings.append(Finding(Level.WARN, "script.sd_calibration_per_eb", path,
                                    f"product made from EB {eb}, which has no "
                                    f"{eb}.ms.scriptForSDCalibration.py"))
    findings += [Finding(Level.WARN, "calibration.per_eb", f"calibration/{eb}",
                         f"no {eb}.calibration.tgz (Tsys/sky tables) for its calibration script")
                 for eb in sorted(scripted - set(tables))]
    return findings


@hookimpl
def qa2_validate(view: PackageView, plugin: str) -> list[Finding] | None:
    """What scriptForPI needs from a manual TP package (domain.md §4, §8.2, §8.3 rule 13)."""
    if plugin != NAME:
        return None
    findings = _mixed_arrays(view) + _nonstandard(view)
    calibration, scripted = _calibration_scripts(view)
    findings += calibration + _per_eb(view, scripted)
    if not view.glob(f"script/{rules.SD_IMAGING}"):
        findings.append(Finding(Level.WARN, "script.sd_imaging", "script/",
                                "no scriptForSDimaging.py (expected for a manual TP reduction)"))
    jyperk = view.glob("calibration/*jyperk*.csv")
    if len(jyperk) > 1:
        findings.append(Finding(Level.ERROR, "calibration.jyperk", "calibration/",
                                f"{len(jyperk)} *jyperk*.csv files ({', '.join(jyperk)}): "
                                "scriptForPI stops on a non-unique jyperk.csv"))
    return findings
