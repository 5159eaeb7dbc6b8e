"""Hook implementations for manual Total Power reductions: each a few lines over rules.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from qa2_totalpower import rules
from qa2core import (
    OVERRIDE,
    Claim,
    Collected,
    Collection,
    Delivery,
    Finding,
    Level,
    PackageView,
    Placement,
    Purpose,
    hookimpl,
)
from qa2core.planning import layouts
from qa2core.planning.rules import eb_of, fnmatch_regex, manual_style, narrowed, unscripted_input_ebs
from qa2core.writing import export


@dataclass(frozen=True)
class Context:
    """What ``qa2_detect`` saw, from names only: the input's SD scripts, and among them the
    calibration scripts scriptForPI runs (``*uid*.ms.scriptForSDCalibration.py``)."""

    sd_scripts: tuple[str, ...] = ()
    runnable_calibration: tuple[str, ...] = ()

    @property
    def scripted_ebs(self) -> frozenset[str]:
        """The EBs whose SD calibration script scriptForPI will run."""
        return frozenset(eb for path in self.runnable_calibration
                         if (eb := eb_of(path.rpartition("/")[2])))


def _survey(delivery: Delivery) -> dict[str, list[str]]:
    """One pass over the input: the names detection looks for and, under ``"staged"``, the
    paths below an OUS placeholder chain (a staged or packaged tree given as input).

    ``qa2 verify`` looks at a package, where the chain is expected: there only the pipeline
    markers decline, so a manual TP package is still recognised and checked by these rules.
    """
    staged = {} if delivery.options.purpose is Purpose.VERIFY else {"staged": rules.PLACEHOLDER_CHAIN}
    return layouts.find_names(delivery.items, rules.DETECT_GROUPS, staged)


@hookimpl
def qa2_detect(delivery: Delivery) -> Claim | None:
    """SD generator scripts decide, over any interferometric claim (original: 'TP mode')."""
    found = _survey(delivery)
    if found["pipeline"] or found.get("staged"):
        return None  # pipeline products or a staged tree: the pipeline plugin's input
    sd = found["sd"]
    if not sd:
        return None
    return Claim(OVERRIDE, f"{len(sd)} Total Power (single-dish) script(s) "
                 "(*.scriptForSDCalibration.py, scriptForSDimaging.py)", tuple(sd[:5]),
                 Context(tuple(sd), tuple(found["runnable"])))


@hookimpl
def qa2_collect(delivery: Delivery, context: Context | None) -> Collection:
    """Every item's kind; a pipeline style (ERROR), an EB of the input without its SD
    calibration script, a script whose EB has no ASDM or MS in the input, and a product CASA
    image qa2 cannot export without casatools (WARN) are findings."""
    if context is None:  # called without detect (a tool, a test)
        found = _survey(delivery)
        context = Context(tuple(found["sd"]), tuple(found["runnable"]))
    collected = layouts.collect(delivery, rules.RULES)
    calibrated = {c.item.name for c in collected if c.kind == "calibrated_ms" and not c.skip}
    items = tuple(_decide_calibrated(c, calibrated) if c.kind == "calibrated_ms" and not c.skip
                  else c for c in collected)
    findings = manual_style(delivery.style) + _mixed_input(delivery, context) + unscripted_input_ebs(
        delivery.items, context.scripted_ebs, "{eb}.ms.scriptForSDCalibration.py",
        "script.sd_calibration_per_eb")
    from qa2core.data.facts import ebs_without_data  # here: verify never needs facts

    findings += ebs_without_data(delivery.root, delivery.items, context.runnable_calibration)
    findings += export.warnings(delivery, items)
    return Collection(items, tuple(findings))


def _mixed_input(delivery: Delivery, context: Context) -> list[Finding]:
    """The input itself mixes arrays: refused here, so that qa2 detect refuses it as package does."""
    interferometric = fnmatch_regex((rules.IF_CALIBRATION,)).match
    found = [i.relpath for i in delivery.items if interferometric(i.name)]
    if not (context.sd_scripts and found):
        return []
    sd = ", ".join(p.rsplit("/", 1)[-1] for p in context.sd_scripts)
    return [Finding(Level.ERROR, "script.mixed_arrays", found[0], "Total Power and interferometric "
                    f"calibration scripts in one reduction (one MOUS is one array): SD scripts {sd}; "
                    f"interferometric scripts {', '.join(p.rsplit('/', 1)[-1] for p in found)}; "
                    "package each array's MOUS on its own")]


def _decide_calibrated(c: Collected, calibrated: set[str]) -> Collected:
    """``<EB>.ms.cal.jy`` (Jy) supersedes ``<EB>.ms.cal`` (K) of the same EB."""
    if c.item.name + ".jy" in calibrated:
        return Collected(c.item, c.kind, skip=f"superseded by {c.item.name}.jy (Jy/K applied)")
    return c


@hookimpl
def qa2_layout(delivery: Delivery, collected: Sequence[Collected]) -> list[Placement]:
    return layouts.place(delivery, collected, rules.DEST_DIR)


# ---------------------------------------------------------------------------- validation


def _names(paths: Sequence[str]) -> str:
    return ", ".join(p.removeprefix("script/") for p in paths)


def _mixed_arrays(view: PackageView) -> list[Finding]:
    in_script = fnmatch_regex(tuple(f"script/{p}" for p in rules.DETECT_PATTERNS)).match
    sd = [f for f in view.files if in_script(f)]
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
    """docs/domain.md §8.2 rule 6 for TP: scriptForPI runs ``*uid*.ms.scriptForSDCalibration.py``
    per EB."""
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
    """Each EB with calibration tables has its script, and each script its tables
    (docs/domain.md §8.3 r. 15)."""
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
def qa2_validate(view: PackageView) -> list[Finding]:
    """What scriptForPI needs from a manual TP package (docs/domain.md §4, §8.2, §8.3 rule 13)."""
    view = narrowed(view, "script/", "calibration/", "product/")
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
