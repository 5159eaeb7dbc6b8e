"""What a pipeline package needs so that scriptForPI can restore it (docs/domain.md §8.2–§8.4).

Only the pipeline rules: README, subdirectories, the PI script, compression and PB partners are
checked by qa2core.hooks.builtin for every package. Everything here looks at the member directory
only: ``view.files``, and content through ``view.open`` (a stream, or ``None`` where content is
not at hand: then the content checks are skipped). Archives are streamed member by member
(qa2core.checks.tgzcheck); whether they are safe to unpack is the core's rule for every archive.
"""

from __future__ import annotations

import tarfile
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, BinaryIO

from qa2_pipeline import ppr, rules
from qa2core import STYLES, UID, Finding, Level, PackageView, Purpose
from qa2core.checks import tgzcheck
from qa2core.planning import naming
from qa2core.planning.rules import missing_pb_partners

if TYPE_CHECKING:
    from qa2_pipeline.context import PipelineInput

IMAGING_SCRIPT = "script/scriptForImaging.py"
AUX_NAMES_KEPT = 64  # per auxproducts.tgz: rule 13 needs two; a real one holds about ten files


def _f(level: Level, rule: str, path: str, message: str) -> Finding:
    return Finding(level, rule, path, message)


def _glob(view: PackageView, *patterns: str) -> list[str]:
    return sorted({f for p in patterns for f in view.glob(p)})


def check(view: PackageView, context: PipelineInput | None = None) -> list[Finding]:
    """Every pipeline rule on one member directory. ``context`` (this plugin's claim) only
    saves parsing the PPR a second time when the member's PPR is the input's."""
    findings = style(view)
    pprs = _glob(view, *rules.PPR_GLOBS)
    request, ppr_findings = _read_ppr(view, pprs, context)
    aux = _aux_members(view)
    single_dish = bool(
        (request and request.single_dish)
        or any(fnmatchcase(f.rsplit("/", 1)[-1], p) for f in view.files
               for p in rules.SINGLE_DISH_NAMES)
        or any(fnmatchcase(m, "*jyperk*.csv") for members in aux.values() for m in members))
    findings += ppr_findings
    findings += _scripts(view, pprs, single_dish)
    findings += _calibration(view, request, single_dish, aux)
    findings += _weblog(view)
    findings += _logs(view)
    findings += _eras(view)
    findings += _manifest(view)
    findings += missing_pb_partners(view, rules.CALIBRATOR_IMAGE)
    return findings


def style(view: PackageView) -> list[Finding]:
    if view.style.pipeline or not view.style.name:
        return []
    pipe = ", ".join(s.name for s in STYLES.values() if s.pipeline)
    return [_f(Level.ERROR, "style.pipeline", f"--style {view.style.name}",
               f"style {view.style.name} is for manual reductions; this is pipeline data: use a "
               f"pipeline style ({pipe}) or no style")]


# ---------------------------------------------------------------------------- script/


def _parse_ppr(fh: BinaryIO, path: str, context: PipelineInput | None) -> ppr.Ppr:
    """The PPR at ``path``: the one the context read from the input when it is that file,
    else parsed from the stream. Raises ``ValueError`` saying why it is no PPR."""
    known = context.ppr_at(path) if context is not None else None
    if known is None:
        return ppr.read_stream(fh)
    if known.request is None:
        raise ValueError(known.error)
    return known.request


def _read_ppr(view: PackageView, pprs: list[str], context: PipelineInput | None,
              ) -> tuple[ppr.Ppr | None, list[Finding]]:
    if not pprs:
        return None, [_f(Level.ERROR, "script.ppr", "script/", "no PPR (PPR_*.xml or "
                         "*pprequest.xml): scriptForPI cannot tell which ASDMs to restore")]
    findings = []
    if len(pprs) > 1:
        findings.append(_f(Level.ERROR, "script.ppr", "script/", f"{len(pprs)} PPRs "
                           f"({', '.join(pprs)}): scriptForPI stops on a non-unique PPR"))
    fh = view.open(pprs[0])
    if fh is None:
        return None, findings  # content not at hand (fake package, rehearsal)
    try:
        with fh:
            request = _parse_ppr(fh, pprs[0], context)
    except ValueError as exc:
        return None, [*findings, _f(Level.ERROR, "script.ppr_xml", pprs[0], f"PPR is {exc}")]
    if not request.asdms:
        findings.append(_f(Level.ERROR, "script.ppr_asdms", pprs[0],
                           "PPR lists no <AsdmDiskName>: scriptForPI has no ASDM to process"))
    bad = [a for a in request.asdms if not UID.fullmatch(a)]
    if bad:
        findings.append(_f(Level.ERROR, "script.ppr_asdms", pprs[0], "AsdmDiskName not a "
                           f"sanitized EB UID (uid___A002_X…_X…): {', '.join(bad)}"))
    if request.unliteral_asdms:
        findings.append(_f(Level.WARN, "script.ppr_asdm_tag", pprs[0], f"{request.unliteral_asdms}"
                           " <AsdmDiskName> element(s) not written as the literal <AsdmDiskName> "
                           "(e.g. <AsdmDiskName xmlns=\"\">): scriptForPI matches the literal tag "
                           "and finds no EBs when the PI runs it"))
    if not request.ous:
        findings.append(_f(Level.WARN, "script.ppr_ous", pprs[0],
                           "PPR has no OUSStatusRef entityId: the MOUS cannot be read from it"))
    return request, findings


def _scripts(view: PackageView, pprs: list[str], single_dish: bool) -> list[Finding]:
    findings = []
    restore = view.glob("script/*casa_piperestorescript.py")
    rerun = view.glob("script/*casa_pipescript.py")
    for found, what in ((restore, "casa_piperestorescript.py"), (rerun, "casa_pipescript.py")):
        if len(found) > 1:
            findings.append(_f(Level.ERROR, "script.unique", "script/", f"{len(found)} "
                               f"*{what} ({', '.join(found)}): scriptForPI stops on duplicates"))
    if not single_dish and not restore:
        findings.append(_f(Level.ERROR, "script.restore", "script/", "no casa_piperestorescript.py:"
                           " an interferometric pipeline package is restored with it"))
    if single_dish and not restore and not rerun:
        findings.append(_f(Level.ERROR, "script.calibration", "script/", "neither "
                           "casa_piperestorescript.py nor casa_pipescript.py: scriptForPI stops "
                           "with 'No calibration script found'"))
    if view.style.strip_oussid_prefix:  # Cycles 2-4: scriptForPI <= v1.15 wants exact names
        for path in restore:
            if path != "script/casa_piperestorescript.py":
                findings.append(_f(Level.WARN, "script.names_v115", path, "scriptForPI <= v1.15 "
                                   "runs only script/casa_piperestorescript.py"))
        for path in pprs:
            if not path.removeprefix("script/").startswith("PPR"):
                findings.append(_f(Level.WARN, "script.names_v115", path, "scriptForPI <= v1.15 "
                                   "finds the PPR only as PPR*; v1.23 also reads *pprequest.xml"))
    if view.purpose is Purpose.PACKAGE and not single_dish and IMAGING_SCRIPT not in view.files:
        findings.append(_f(Level.ERROR, "script.imaging", IMAGING_SCRIPT, "no scriptForImaging.py"
                           " for interferometric data: put the manual imaging script in "
                           "calibrated/ or script/ (pipeline-imaged data get an empty one)"))
    return findings


# ---------------------------------------------------------------------------- calibration/


def _aux_members(view: PackageView) -> dict[str, list[str]]:
    """The top-level file members of each ``calibration/*auxproducts.tgz`` that rule 13 counts
    (``rules.UNIQUE_CALIBRATION``): what scriptForPI >= 1.23 untars into calibration/. Streamed
    by qa2core.checks.tgzcheck, headers only, at most ``AUX_NAMES_KEPT`` names per archive. A tgz whose
    content is not at hand is left out (its name is all there is); one that is unreadable or
    unsafe is reported by the core's rules (``archive.*``) and counts no members here."""
    members: dict[str, list[str]] = {}
    for path in _glob(view, *rules.AUXPRODUCTS):
        names: list[str] = []

        def keep(info: tarfile.TarInfo, why: str, names: list[str] = names) -> None:
            name = info.name.removeprefix("./")
            if (not why and info.isfile() and "/" not in name and len(names) < AUX_NAMES_KEPT
                    and any(fnmatchcase(name, p) for p in _unique_patterns(view))):
                names.append(name)

        report = tgzcheck.scan_path(view.open, path, keep)
        if report is not None and report.ok:
            members[path] = names
    return members


def _unique_patterns(view: PackageView) -> tuple[str, ...]:
    """Rule 13's names; Cycle >= 10 styles add ``*selfcal.json`` (scriptForPI 2.5 stops on two)."""
    return rules.UNIQUE_CALIBRATION + (rules.UNIQUE_SELFCAL if view.style.unique_selfcal else ())


def _unique(view: PackageView, pattern: str, aux: dict[str, list[str]]) -> list[Finding]:
    """docs/domain.md §8.3 rule 13: at most one ``pattern`` in calibration/ once every
    *auxproducts.tgz is untarred there, as scriptForPI >= 1.23 does before its pipeline re-run."""
    loose = view.glob(f"calibration/{pattern}")
    packed = [(tgz, m) for tgz, names in aux.items() for m in names if fnmatchcase(m, pattern)]
    if len(loose) + len(packed) < 2:
        return []
    shown = ", ".join([*loose, *(f"{m} in {tgz}" for tgz, m in packed)])
    names = {p.rsplit("/", 1)[-1] for p in loose} | {m for _, m in packed}
    if len(names) > 1:
        why = (f"scriptForPI >= 1.23 untars *auxproducts.tgz inside calibration/, then stops its "
               f"pipeline re-run on more than one {pattern}")
    else:
        why = ("scriptForPI >= 1.23 untars *auxproducts.tgz inside calibration/, over the file "
               "shipped there: one of them is lost without a word")
    return [_f(Level.ERROR, "calibration.unique", "calibration/", f"{len(loose) + len(packed)} "
               f"{pattern} ({shown}): {why}; ship one (docs/domain.md §8.3 rule 13)")]


def _calibration(view: PackageView, request: ppr.Ppr | None, single_dish: bool,
                 aux: dict[str, list[str]]) -> list[Finding]:
    findings = []
    if not _glob(view, *rules.ERA_TYPES["caltables"]):
        findings.append(_f(Level.ERROR, "calibration.caltables", "calibration/", "no "
                           "*.caltables.tgz (or .tar.gz): the pipeline restore has no tables"))
    if request is not None and not single_dish:
        for eb in filter(UID.fullmatch, request.asdms):
            if not view.glob(f"calibration/{eb}.ms.flagversions.t*gz"):
                findings.append(_f(Level.ERROR, "calibration.flagversions", f"calibration/{eb}",
                                   f"no {eb}.ms.flagversions.tgz (or .tar.gz) for this EB of "
                                   "the PPR"))
            if f"calibration/{eb}.ms.calapply.txt" not in view.files:
                findings.append(_f(Level.ERROR, "calibration.calapply", f"calibration/{eb}",
                                   f"no {eb}.ms.calapply.txt for this EB of the PPR"))
    for pattern in _unique_patterns(view):
        findings += _unique(view, pattern, aux)
    jyperk = view.glob("calibration/*jyperk*.csv") or [
        m for names in aux.values() for m in names if fnmatchcase(m, "*jyperk*.csv")]
    if request is not None and request.single_dish and not jyperk:
        findings.append(_f(Level.WARN, "calibration.jyperk", "calibration/", f"{request.recipe} "
                           "run without jyperk.csv: scriptForPI will not treat it as TP"))
    return findings


# ---------------------------------------------------------------------------- qa/, log/


def _stray(info: tarfile.TarInfo) -> bool:
    """Outside pipeline-*/html/; the parent ``pipeline-<stamp>/`` entry a hand-made tar holds
    (``tar czf X.weblog.tgz pipeline-<stamp>``) is not stray."""
    name = info.name.rstrip("/")
    if info.isdir() and fnmatchcase(name, "pipeline-*") and "/" not in name:
        return False
    return not any(fnmatchcase(info.name, p) for p in rules.WEBLOG_MEMBER)


class _Strays:
    """A ``tgzcheck.scan`` visitor: how many safe members are stray, and the first one."""

    def __init__(self) -> None:
        self.count, self.first = 0, ""

    def __call__(self, info: tarfile.TarInfo, why: str) -> None:
        if not why and _stray(info):
            self.count += 1
            self.first = self.first or info.name


def _weblog(view: PackageView) -> list[Finding]:
    """The weblog's own rules: present, not empty, pages below pipeline-*/html/. Whether it is
    safe to unpack and readable at all is the core's rule for every archive (``archive.*``,
    qa2core.checks.tgzcheck): a weblog that fails it gets no second line here."""
    weblogs = _glob(view, *rules.ERA_TYPES["weblog"])
    if not weblogs:
        return [_f(Level.ERROR, "qa.weblog", "qa/", "no pipeline weblog (*weblog.tgz or "
                   "*weblog.tar.gz)")]
    findings = []
    if len(weblogs) > 1:
        findings.append(_f(Level.WARN, "qa.weblog", "qa/", f"{len(weblogs)} weblogs: "
                           f"{', '.join(weblogs)}"))
    for path in weblogs:
        stray = _Strays()
        report = tgzcheck.scan_path(view.open, path, stray)
        if report is None or not report.ok:
            continue  # content not at hand (fake package, rehearsal), or the core's archive.*
        if not report.members:
            findings.append(_f(Level.ERROR, "qa.weblog_members", path, "the weblog is empty"))
        elif stray.count:
            findings.append(_f(Level.WARN, "qa.weblog_members", path,
                               f"{stray.count} member(s) outside pipeline-*/html/, e.g. {stray.first}"))
    return findings


def _logs(view: PackageView) -> list[Finding]:
    findings = []
    commands = view.glob("log/*casa_commands.log")
    if not commands:
        findings.append(_f(Level.WARN, "log.casa_commands", "log/", "no casa_commands.log of "
                           "the pipeline run"))
    if not [f for f in view.glob("log/casa*.log") if f not in commands]:
        findings.append(_f(Level.WARN, "log.casa", "log/", "no CASA log (casa-*.log)"))
    return findings


# ---------------------------------------------------------------------------- eras, manifest


def _eras(view: PackageView) -> list[Finding]:
    findings, suffixes = [], {}
    for kind, (tgz, targz) in rules.ERA_TYPES.items():
        new, old = view.glob(tgz), view.glob(targz)
        if new and old:
            findings.append(_f(Level.ERROR, "era.mixed", new[0], f"{kind} as both .tgz and "
                               f".tar.gz ({old[0]}): products of two pipeline eras; a restore "
                               "with a pipeline from 2016-07 on looks for *.tgz only"))
        elif new or old:
            suffixes[kind] = ".tgz" if new else ".tar.gz"
    if len(set(suffixes.values())) > 1:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(suffixes.items()))
        findings.append(_f(Level.WARN, "era.types", "calibration/", f"archive suffixes of two "
                           f"pipeline eras ({shown}); one pipeline run writes one kind"))
    return findings


# What scriptForPI and the restore open from calibration/ by the name the manifest gives
# (scriptForPI: ous/aux_products_file; hifa_restoredata: caltables, finalflags, applycmds).
_MANIFEST_FILES = ("aux_products_file", "caltables", "finalflags", "applycmds")


def _manifest_names(fh: BinaryIO) -> tuple[list[tuple[str, str]], bool]:
    """(element, file name) of each file the manifest names, streamed; and whether every
    ``aux_products_file`` has ``name`` as its first attribute (scriptForPI 1.23-1.34 read
    ``items()[0]`` and skip the file otherwise)."""
    import xml.etree.ElementTree as ET  # here: a manual package never pays for it

    named, name_first = [], True
    for _event, element in ET.iterparse(fh, events=("start",)):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in _MANIFEST_FILES and element.get("name"):
            named.append((tag, element.get("name", "")))
            if tag == "aux_products_file":
                name_first = name_first and next(iter(element.attrib), "") == "name"
    return named, name_first


def _manifest(view: PackageView) -> list[Finding]:
    """A manifest naming a file calibration/ lacks breaks scriptForPI's unpacking and the
    restore: an ERROR in a Cycle >= 5 member (its files are renamed; qa2 rewrites the manifest
    to match), a WARN before."""
    level = Level.ERROR if naming.modern(view.files) else Level.WARN
    findings = []
    for path in view.glob("script/*pipeline_manifest.xml"):
        fh = view.open(path)
        if fh is None:
            continue
        from xml.etree.ElementTree import ParseError

        try:
            with fh:
                named, name_first = _manifest_names(fh)
        except ParseError as exc:
            findings.append(_f(level, "script.manifest", path, f"not well-formed XML ({exc})"))
            continue
        for tag, name in named:
            if f"calibration/{name}" not in view.files:
                findings.append(_f(level, "script.manifest", path, f"names {tag} {name}, which "
                                   "is not in calibration/"))
        if not name_first:
            findings.append(_f(level, "script.manifest", path, "aux_products_file: 'name' is "
                               "not its first attribute, so scriptForPI does not unpack it"))
    return findings
