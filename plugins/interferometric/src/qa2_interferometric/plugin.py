"""Hook implementations for manual interferometric reductions: each a few lines over rules.py."""

from __future__ import annotations

from collections.abc import Sequence

from qa2_interferometric import rules
from qa2core import (
    GENERIC,
    SPECIFIC,
    Claim,
    Collected,
    Delivery,
    Finding,
    Level,
    PackageView,
    Placement,
    hookimpl,
    layouts,
)
from qa2core.rules import eb_of, missing_pb_partners, unscripted_input_ebs

NAME = "interferometric"


@hookimpl
def qa2_detect(delivery: Delivery) -> Claim | None:
    if layouts.matching(delivery, rules.PIPELINE_MARKERS):
        return None  # pipeline products: the pipeline plugin's input
    cal = layouts.matching(delivery, (rules.CALIBRATION_SCRIPT,))
    if cal:
        return Claim(SPECIFIC, f"{len(cal)} per-EB calibration script(s) "
                     "(*.ms.scriptForCalibration.py)", tuple(cal[:5]))
    imaging = layouts.matching(delivery, ("scriptForImaging.py", "*.pbcor.fits"))
    if imaging:
        return Claim(GENERIC, "imaging script or FITS products, no calibration scripts",
                     tuple(imaging[:5]))
    return None


@hookimpl
def qa2_collect(delivery: Delivery) -> list[Collected]:
    return layouts.collect(delivery, rules.RULES, rules.QA_DIRS)


@hookimpl
def qa2_layout(delivery: Delivery, collected: Sequence[Collected]) -> list[Placement]:
    return layouts.place(delivery, collected, rules.DEST_DIR, rules.QA_DIRS)


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
    findings += missing_pb_partners(view)
    findings += unscripted_input_ebs(view, ebs, "{eb}.ms.scriptForCalibration.py",
                                     "script.calibration_per_eb")
    for eb in sorted(ebs):
        if not view.glob(f"calibration/{eb}.calibration.tgz"):
            findings.append(Finding(Level.WARN, "calibration.per_eb", f"calibration/{eb}",
                                    f"no {eb}.calibration.tgz for its calibration script"))
    return findings
