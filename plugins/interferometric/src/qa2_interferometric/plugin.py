"""Hook implementations for manual interferometric reductions: each a few lines over rules.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qa2_interferometric import rules
from qa2core import (
    GENERIC,
    SPECIFIC,
    Claim,
    Collected,
    Collection,
    Delivery,
    Finding,
    Level,
    PackageView,
    Placement,
    hookimpl,
)
from qa2core.planning import layouts
from qa2core.planning.rules import eb_of, manual_style, missing_pb_partners, narrowed, unscripted_input_ebs
from qa2core.writing import export


@dataclass(frozen=True)
class Context:
    """What ``qa2_detect`` saw, from names only: the input's per-EB calibration scripts."""

    calibration_scripts: tuple[str, ...] = ()

    @property
    def scripted_ebs(self) -> frozenset[str]:
        """The EBs that have their ``<EB>.ms.scriptForCalibration.py``."""
        return frozenset(eb for path in self.calibration_scripts
                         if (eb := eb_of(path.rpartition("/")[2])))


def _survey(delivery: Delivery) -> dict[str, list[str]]:
    """One pass over the names: pipeline markers, calibration scripts, imaging evidence."""
    return layouts.find_names(delivery.items, rules.DETECT_GROUPS)


@hookimpl
def qa2_detect(delivery: Delivery) -> Claim | None:
    found = _survey(delivery)
    if found["pipeline"]:
        return None  # pipeline products: the pipeline plugin's input
    cal, imaging = found["calibration"], found["imaging"]
    context = Context(tuple(cal))
    if cal:
        return Claim(SPECIFIC, f"{len(cal)} per-EB calibration script(s) "
                     "(*.ms.scriptForCalibration.py)", tuple(cal[:5]), context)
    if imaging:
        return Claim(GENERIC, "imaging script or FITS products, no calibration scripts",
                     tuple(imaging[:5]), context)
    return None


@hookimpl
def qa2_collect(delivery: Delivery, context: Context | None) -> Collection:
    """Every item's kind; a pipeline style (ERROR), an EB of the input without its calibration
    script, a script whose EB has no ASDM or MS in the input, and a product CASA image qa2
    cannot export without casatools (WARN) are findings."""
    if context is None:  # called without detect (a tool, a test)
        context = Context(tuple(_survey(delivery)["calibration"]))
    collected = layouts.collect(delivery, rules.RULES)
    findings = manual_style(delivery.style) + unscripted_input_ebs(
        delivery.items, context.scripted_ebs, "{eb}.ms.scriptForCalibration.py",
        "script.calibration_per_eb")
    from qa2core.data.facts import ebs_without_data  # here: verify never needs facts

    findings += ebs_without_data(delivery.root, delivery.items, context.calibration_scripts)
    findings += export.warnings(delivery, collected)
    return Collection(tuple(collected), tuple(findings))


@hookimpl
def qa2_layout(delivery: Delivery, collected: Sequence[Collected]) -> list[Placement]:
    return layouts.place(delivery, collected, rules.DEST_DIR)


@hookimpl
def qa2_validate(view: PackageView) -> list[Finding]:
    """What scriptForPI needs from a manual package (docs/domain.md §8.2, §8.3 rule 15)."""
    view = narrowed(view, "script/", "calibration/", "product/")
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
    ebs = {eb for p in cal if (eb := eb_of(p))}
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
    for eb in sorted(ebs):
        if not view.glob(f"calibration/{eb}.calibration.tgz"):
            findings.append(Finding(Level.WARN, "calibration.per_eb", f"calibration/{eb}",
                                    f"no {eb}.calibration.tgz for its calibration script"))
    return findings
