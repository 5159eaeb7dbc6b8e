"""``package``: scan -> detect -> collect -> layout -> plan -> validate -> write -> report.

No Typer here: the CLI and the CASA-style API both call :func:`package` and get a
:class:`~qa2core.report.Report` or a :class:`~qa2core.errors.Qa2Error`. The path of one run,
module by module, is in docs/architecture.md.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from qa2core import casaenv, facts, ous, paths, readme
from qa2core import piscript as pi
from qa2core.build import BuildRequest, BuildResult, PublishedWithFault, write_package
from qa2core.errors import Qa2Error, UsageError, ValidationFailed
from qa2core.manager import Decision, Qa2Plugins, RankedClaim, get_plugin_manager
from qa2core.model import (
    UNCLASSIFIED,
    Action,
    Collected,
    Collection,
    Delivery,
    Finding,
    Level,
    Mode,
    PackageOptions,
    Placement,
    Purpose,
)
from qa2core.plan import PISCRIPT_DEST, Plan, make_plan
from qa2core.report import FileRecord, Meter, Report
from qa2core.scan import scan
from qa2core.styles import Style, resolve_style

STAGE_MODES = (Mode.COPY, Mode.HARD, Mode.FAKE)


# ---------------------------------------------------------------------------- inputs


def _check_paths(origpath: Path, packpath: Path) -> tuple[Path, Path]:
    if not origpath.exists():
        raise UsageError(f"{origpath}: ORIGPATH does not exist")
    if not origpath.is_dir():
        raise UsageError(f"{origpath}: ORIGPATH must be a reduction directory, not a file")
    orig, pack = origpath.resolve(), packpath.resolve()
    if pack == orig or pack.is_relative_to(orig):
        raise Qa2Error(f"{packpath}: PACKPATH must not be inside ORIGPATH {origpath} "
                       "(the source is never written to)")
    if orig.is_relative_to(pack) or orig.is_relative_to(paths.state_dir(pack)):
        raise Qa2Error(f"{packpath}: PACKPATH must not contain ORIGPATH {origpath} "
                       "(append none would delete the source)")
    if pack.exists() and not pack.is_dir():
        raise Qa2Error(f"{packpath}: PACKPATH exists and is not a directory")
    if not pack.parent.is_dir():
        raise UsageError(f"{pack.parent}: parent directory of PACKPATH does not exist")
    zip_path = paths.ticket_zip(pack)
    if zip_path.exists() and not zip_path.is_file():
        raise Qa2Error(f"{zip_path}: ticket zip path exists and is not a file")
    return orig, pack


def resolve_piscript(piscript: Path | str | None) -> Path | None:
    """A file, or a directory holding ``scriptForPI.py`` (original page: both forms)."""
    if piscript is None or str(piscript) == "":
        return None
    piscript = Path(piscript)
    if piscript.is_dir():
        candidate = piscript / "scriptForPI.py"
        if not candidate.is_file():
            raise UsageError(f"{piscript}: --piscript directory holds no scriptForPI.py")
        return candidate.resolve()
    if not piscript.is_file():
        raise UsageError(f"{piscript}: --piscript does not exist")
    return piscript.resolve()


def _choice(value: str | Mode, valid: tuple[Mode, ...] | tuple[str, ...], what: str):
    value = value or valid[0]
    for v in valid:
        if str(v) == str(value):
            return v
    raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(map(str, valid))}")


@dataclass(frozen=True)
class Request:
    """A checked request: every usage error is raised before any work starts."""

    root: Path
    pack: Path
    origpath: str  # as the user wrote it, for messages
    packpath: str
    mode: Mode
    append: str
    style: Style
    readme: Path | None
    piscript: Path | None
    uids: ous.OusUids | None
    purpose: Purpose


# ---------------------------------------------------------------------------- planning


def _core_placements(style: Style, mode: Mode, piscript: Path | None,
                     warnings: list[str]) -> list[Placement]:
    """The PI script is everybody's: the core places it (docs/domain.md §3.6)."""
    if piscript is not None:
        with open(piscript, "rb") as fh:
            data = fh.read(pi.MAX_BYTES + 1)
        bad = pi.content_problem(data) if len(data) <= pi.MAX_BYTES else "it is over 4 MiB"
        if bad:  # every mode: the rehearsal refuses what the real run refuses
            raise Qa2Error(f"{piscript}: --piscript is not a scriptForPI: {bad} "
                           "[script.piscript_content]")
        wrong = pi.identity(piscript.name, data[:pi.HEAD])
        if wrong and mode is Mode.FAKE:
            warnings.append(f"{piscript}: {wrong}; a real run refuses it [script.piscript_identity]")
        elif wrong:
            raise Qa2Error(f"{piscript}: --piscript: {wrong} [script.piscript_identity]")
        return [Placement(PISCRIPT_DEST, Action.COPY, external=piscript, rule="core.piscript")]
    if not style.needs_piscript:
        return []
    if mode is Mode.FAKE:
        warnings.append("no --piscript given: script/scriptForPI.py is an empty placeholder; "
                        "the real run needs --piscript")
        return [Placement(PISCRIPT_DEST, Action.EMPTY, rule="core.piscript")]
    raise Qa2Error(f"missing scriptForPI: style {style.name or '(none)'} needs --piscript "
                   f"(the file, or the directory holding scriptForPI.py) in mode {mode}")


@dataclass(frozen=True)
class Accounting:
    packable: tuple[Collected, ...]
    skipped: tuple[tuple[str, str], ...]
    unclassified: tuple[str, ...]


def _own_piscript(req: Request, items: tuple, warnings: list[str]) -> Path | None:
    """Without --piscript, a reduction's own ``scriptForPI.py`` (the original page packages TP
    data so: no PIscript given) is used, with a warning to check it is the master copy."""
    if req.piscript is not None or not req.style.needs_piscript:
        return None
    own = [i for i in items if i.name == "scriptForPI.py" and not i.is_dir]
    if len(own) != 1:
        return None
    warnings.append(f"{req.origpath}/{own[0].relpath}: no --piscript given: packaging the "
                    "reduction's own scriptForPI.py; check it is the current master copy")
    return req.root / own[0].relpath


def _account(delivery: Delivery, collection: Collection, used: Path | None = None) -> Accounting:
    """Split collected items into packable, skipped and unclassified; nothing is lost."""
    known = {str(used.relative_to(delivery.root))} if used else set()
    packable, skipped, unclassified = [], [], []
    for c in collection.items:
        if c.item.relpath in known:
            continue  # the core packages it (the reduction's own scriptForPI.py)
        known.add(c.item.relpath)
        if c.skip:
            skipped.append((c.item.relpath, c.skip))
        elif c.kind == UNCLASSIFIED:
            unclassified.append(c.item.relpath)
        else:
            packable.append(c)
    unclassified += [i.relpath for i in delivery.items if i.relpath not in known]
    return Accounting(tuple(packable), tuple(skipped), tuple(unclassified))


_QA_LIKE = re.compile(r"qa2|report", re.IGNORECASE)


def _lost_qa(accounting: Accounting) -> list[str]:
    """QA material left out matters to the PI: one WARN per file, whoever missed it."""
    lost = [rel for rel in accounting.unclassified if _QA_LIKE.search(rel)]
    lines = [f"{rel}: QA report not packaged (no plugin rule takes it) [qa.not_packaged]"
             for rel in lost[:10]]
    if len(lost) > 10:
        lines.append(f"... and {len(lost) - 10} more QA file(s) not packaged (see --json)")
    return lines


# ---------------------------------------------------------------------------- the run


def _request(origpath, packpath, readme_path, piscript, style, mode, append, noms, ous_uids,
             purpose: Purpose) -> Request:
    modes = STAGE_MODES if purpose is Purpose.STAGE else tuple(Mode)
    mode = _choice(mode, modes, "mode")
    append = _choice(append or "none", ous.APPEND_MODES, "append mode")
    resolved_style = resolve_style(style, noms)
    readme_file = Path(readme_path) if readme_path else None
    if readme_file is not None and not readme_file.is_file():
        raise UsageError(f"{readme_file}: --readme header file does not exist")
    pi = resolve_piscript(piscript)
    uids = ous.parse_uids(ous_uids) if ous_uids and ous_uids.strip() != "auto" else None
    orig, pack = _check_paths(Path(origpath), Path(packpath))
    return Request(orig, pack, str(origpath), str(packpath), mode, append, resolved_style,
                   readme_file, pi, uids, purpose)


def package(
    origpath: Path | str,
    packpath: Path | str,
    *,
    readme_path: Path | str | None = None,
    piscript: Path | str | None = None,
    style: str = "",
    mode: str | Mode = Mode.FAKE,
    append: str = "none",
    noms: bool | None = None,
    plugin: str | None = None,
    dry_run: bool = False,
    jobs: int | None = None,
    plugins: Qa2Plugins | None = None,
    progress: Callable[[str], None] | None = None,
    purpose: Purpose | str = Purpose.PACKAGE,
    ous_uids: str | None = None,
    meter: Meter | None = None,
) -> Report:
    """Package ORIGPATH into PACKPATH (QA_Packager). Raises Qa2Error on refusal.

    ``purpose=Purpose.STAGE`` is QA_Pipeline_Stager (use :func:`stage`): the README is the
    header alone, no ticket zip is written, and plugins are told so through the options.
    """
    req = _request(origpath, packpath, readme_path, piscript, style, mode, append, noms,
                   ous_uids, Purpose(purpose))
    auto_uids = (ous_uids or "").strip() == "auto"  # names from the input, via qa2_ous_uids
    facts.scratch_in(None if dry_run else paths.state_dir(req.pack))  # tables are read there
    plugins = plugins or get_plugin_manager()
    plugins.require_healthy()
    say = progress or (lambda _msg: None)

    items, scan_warnings = scan(req.root)
    if not items:
        raise Qa2Error(f"{req.origpath}: ORIGPATH is empty (no files to package)")
    options = PackageOptions(mode=req.mode, append=req.append, piscript=req.piscript,
                             readme=req.readme, purpose=req.purpose)
    delivery = Delivery(req.root, items, req.style, options)
    decision = plugins.choose(delivery, plugin)
    if req.purpose is Purpose.STAGE and not plugins.marked(decision.plugin, "QA2_STAGES"):
        line = (f"{req.origpath}: qa2 stage takes pipeline runs; {decision.plugin} claims this "
                f"input ({decision.claim.reason}) and does not stage: package it with qa2 package")
        raise Qa2Error(line, lines=(line, *(r.line() for r in decision.ranked)),
                       plugin=decision.plugin)
    say(f"{decision.plugin} claims {req.origpath} ({decision.claim.reason})")

    collection = plugins.collect(decision.plugin, delivery, decision.context)
    refusal = [f.text() for f in collection.findings if f.level is Level.ERROR]
    if refusal:  # the input itself is refused: say why before planning anything
        raise ValidationFailed(f"refused: {len(refusal)} rule(s) broken", lines=tuple(refusal),
                               plugin=decision.plugin)
    warnings = [*scan_warnings]
    own_pi = _own_piscript(req, items, warnings)
    accounting = _account(delivery, collection, own_pi)
    placements = [*plugins.layout(decision.plugin, delivery, accounting.packable, decision.context),
                  *_core_placements(req.style, req.mode, req.piscript or own_pi, warnings)]
    plan = make_plan(req.root, items, placements)
    view = plan.view(req.style, decision.plugin, req.mode, req.purpose)
    findings = (*collection.findings, *plugins.validate(view, decision.plugin, decision.context))
    warnings += [f.text() for f in findings if f.level is Level.WARN]
    warnings += _lost_qa(accounting)
    warnings += _input_warnings(req)

    errors = tuple(f.text() for f in findings if f.level is Level.ERROR)
    if errors:  # fake mode too: it is the rehearsal, and it must say what a real run refuses
        raise ValidationFailed(f"refused: {len(errors)} rule(s) broken", lines=errors,
                               plugin=decision.plugin)
    uids = req.uids  # placeholders unless asked for (docs/contract.md)
    if auto_uids:
        uids = plugins.ous_uids(decision.plugin, delivery, decision.context)
        if uids is None:
            raise Qa2Error(f"--ous-uids auto: {decision.plugin} finds no SOUS, GOUS and MOUS UIDs "
                           f"in the names of {req.origpath} (its claim: {decision.claim.reason}); "
                           "give them as --ous-uids SOUS,GOUS,MOUS (qa2 stage prints them for the "
                           "run it stages), or leave the option out to keep the placeholders",
                           plugin=decision.plugin)
    header = req.readme.read_bytes() if req.readme else b""
    if req.readme is None and req.purpose is Purpose.PACKAGE:  # a template, filled where qa2 can
        header, unfilled = readme.template_header(req.root, items, req.pack.name,
                                                  uids.member if uids else "")
        warnings.append("no --readme header given: README header written from a template; fill "
                        f"in {', '.join(unfilled) or 'nothing'} before delivery [readme.template]")

    def readme_for(member_name: str) -> bytes:
        if req.purpose is Purpose.STAGE:
            return header
        return readme.assemble(header, member_name, plan.listing)

    parts = (req, decision, plan, accounting, findings, warnings)
    space = _space(req, plan)
    if dry_run:  # the target as it would be now; the real run decides it under the lock
        return _report(*parts, member=ous.target(req.pack, req.append, uids).member,
                       readme_bytes=readme_for("member_ouss_id"), built=None, space=space)
    if space[0] > space[1]:
        raise Qa2Error(f"{req.packpath}: not enough free space: the package needs about "
                       f"{space[0]} bytes, its file system has {space[1]} free; nothing was "
                       "written [space.free]", plugin=decision.plugin)
    built = _write(BuildRequest(
        plan, req.pack, req.root, req.mode, req.purpose, req.append, uids, readme_for,
        {"style": req.style.name, "plugin": decision.plugin},
        (*accounting.skipped, *((rel, "not recognised") for rel in accounting.unclassified)),
        jobs or min(4, os.cpu_count() or 1)), say, meter, plugins)
    return _report(*parts, member=built.member, readme_bytes=b"", built=built, space=space)


def _write(request: BuildRequest, say: Callable[[str], None], meter: Meter | None,
           plugins: Qa2Plugins) -> BuildResult:
    """Write the package. A fault after its swap is told as it is: the new package is in place;
    it counts as done when its bookkeeping was completed and it verifies, else the run fails and
    says how to finish it (never "nothing was kept")."""
    try:
        return write_package(request, say, meter)
    except PublishedWithFault as fault:
        if not fault.finished:
            raise
        from qa2core.verify import verify

        try:
            checked = verify(request.pack, level="full" if request.mode.real else "complete",
                             plugins=plugins)
        except Qa2Error:
            checked = None
        if checked is None or not checked.ok:
            raise Qa2Error(f"{fault}; it does not verify: run qa2 package again") from fault
        say(f"{fault}; it verifies: the run counts as done")
        return replace(fault.result, notes=(*fault.result.notes, f"{fault}; it verifies: the "
                                            "run counts as done"))


def _space(req: Request, plan: Plan) -> tuple[int, int]:
    """(bytes the run writes, at most; bytes free where PACKPATH lives). Links, placeholders and
    the README cost next to nothing; compression is counted at its input size."""
    needed = 0
    if req.mode.real:
        linked = req.mode is Mode.HARD
        needed = sum(f.bytes for f in plan.files if not (linked and f.linkable))
    where = req.pack if req.pack.exists() else req.pack.parent
    return needed, shutil.disk_usage(where).free


def _input_warnings(req: Request) -> list[str]:
    if req.purpose is not Purpose.PACKAGE:
        return []
    out = []
    if not ous.PROJECT_CODE.match(req.pack.name):  # JAO staged to <run>_<MOUS>
        out.append(f"{req.packpath}: PACKPATH should be named after the project code "
                   "(like 2016.1.01435.S) [structure.project_code]")
    code = readme.header_project_code(req.readme.read_bytes()) if req.readme else None
    if code and code != req.pack.name:
        out.append(f"{req.readme}: the README header says project code {code}, PACKPATH is "
                   f"{req.pack.name} [readme.project_code]")
    return out


def _report(req: Request, decision: Decision, plan: Plan, accounting: Accounting,
            findings: tuple[Finding, ...], warnings: list[str], *, member: str,
            readme_bytes: bytes, built: BuildResult | None, space: tuple[int, int]) -> Report:
    """The one place a Report is made: from the plan, and from what was written."""
    done = {r.dest: r for r in built.entries} if built else {}
    files = [FileRecord("README", (str(req.readme),) if req.readme else (), "readme",
                        built.readme.size if built else len(readme_bytes), "core.readme")]
    for f in plan.files:
        result = done.get(f.dest)
        if result is not None:
            action = result.action
        elif not req.mode.real and f.action not in (Action.EMPTY, Action.EXPORT):
            action = "fake"
        else:
            action = "link" if req.mode is Mode.HARD and f.linkable else str(f.action)
        files.append(FileRecord(f.dest, f.sources, action, f.bytes, f.rule))
    if built:
        warnings = warnings + _build_warnings(built)
    warnings = warnings + casaenv.drain()  # CASA's SEVERE lines, relayed (qa2core.casaenv)
    package_bytes = built.package_bytes if built else len(readme_bytes) + plan.source_bytes()
    return Report(
        decision.plugin, req.style.name, str(req.mode), req.append, req.packpath, member,
        built is None, tuple(_claim_json(r) for r in decision.ranked), tuple(files),
        accounting.skipped, accounting.unclassified, findings, tuple(warnings),
        built.notes if built else (), package_bytes, built.ticket if built else "",
        plan.listing, origpath=str(req.root), space=space)


def _build_warnings(built: BuildResult) -> list[str]:
    out = []
    fallbacks = [r.dest for r in built.entries if r.link_fallback]
    if fallbacks:
        out.append(f"hard links refused by the file system for {len(fallbacks)} entr(y/ies) "
                   f"(e.g. {fallbacks[0]}): copied instead")
    tables = [r.dest for r in built.entries if r.copied_table]
    if tables:
        out.append(f"{len(tables)} CASA table(s) copied, not hard-linked, because CASA rewrites "
                   f"tables in place: {', '.join(tables)}")
    return out


def stage(
    pipeline_root: Path | str,
    staged_root: Path | str,
    *,
    mode: str | Mode = Mode.COPY,
    piscript: Path | str | None = None,
    pipe_readme: Path | str | None = None,
    plugin: str | None = None,
    dry_run: bool = False,
    jobs: int | None = None,
    plugins: Qa2Plugins | None = None,
    progress: Callable[[str], None] | None = None,
    meter: Meter | None = None,
) -> Report:
    """Stage a pipeline run into a delivery-shaped tree (QA_Pipeline_Stager).

    The same machinery as :func:`package`; the plugin that claims the run decides the layout.
    The member README is ``pipe_readme`` unchanged (empty when not given, as JAO's pkgPipe did);
    the OUS directories are the placeholders, as JAO's stager wrote them.

    Only a plugin that stages may win: one whose module sets ``QA2_STAGES = True`` (as
    ``QA2_CROSS_CUTTING`` marks cross-cutting rules). Any other winner, a manual reduction's
    plugin, refuses the run before anything is planned, naming that plugin and its claim. Opt-in,
    so a new plugin never stages by accident.
    """
    return package(pipeline_root, staged_root, readme_path=pipe_readme, piscript=piscript,
                   mode=mode or Mode.COPY, plugin=plugin, dry_run=dry_run, jobs=jobs,
                   plugins=plugins, progress=progress, purpose=Purpose.STAGE, meter=meter)


def load_delivery(origpath: Path | str, style: str = "",
                  purpose: Purpose = Purpose.PACKAGE) -> Delivery:
    """Scan ORIGPATH into a Delivery (for detect, inspect, verify and tests)."""
    origpath = Path(origpath)
    if not origpath.is_dir():
        raise UsageError(f"{origpath}: ORIGPATH does not exist or is not a directory")
    items, _ = scan(origpath.resolve())
    if not items:
        raise Qa2Error(f"{origpath}: ORIGPATH is empty (no files to package)")
    return Delivery(origpath.resolve(), items, resolve_style(style),
                    PackageOptions(purpose=purpose))


def detect(origpath: Path | str, plugins: Qa2Plugins | None = None) -> Decision:
    """The plugin that would package ORIGPATH, and every claim (``qa2 detect``). An input the
    winner refuses as it is (mixed arrays, a broken run) is refused here too, with the same
    rule: detect and package never disagree."""
    plugins = plugins or get_plugin_manager()
    plugins.require_healthy()
    delivery = load_delivery(origpath)
    decision = plugins.choose(delivery)
    collection = plugins.collect(decision.plugin, delivery, decision.context)
    refusal = tuple(f.text() for f in collection.findings if f.level is Level.ERROR)
    if refusal:
        raise ValidationFailed(f"refused: {len(refusal)} rule(s) broken", lines=refusal,
                               plugin=decision.plugin)
    return decision


def inspect(origpath: Path | str, plugins: Qa2Plugins | None = None, style: str = "") -> dict:
    """What qa2 sees in ORIGPATH (``qa2 inspect``): for every item its kind, the facts read
    from its data (qa2core.facts) and its fate under ``style``: destination, action and the rule
    that chose it, or why it stays out. Tables are read through mirrors in a temporary
    directory, removed before returning; the source is never written."""
    import tempfile

    plugins = plugins or get_plugin_manager()
    plugins.require_healthy()
    delivery = load_delivery(origpath, style)
    decision = plugins.choose(delivery)
    collection = plugins.collect(decision.plugin, delivery, decision.context)
    accounting = _account(delivery, collection)
    placements = plugins.layout(decision.plugin, delivery, accounting.packable, decision.context)
    fates: dict[str, list[dict]] = {}
    for f in make_plan(delivery.root, delivery.items, placements).files:
        action = "copy/link" if f.linkable else str(f.action)  # hard mode links it
        for item in f.items:
            fates.setdefault(item.relpath, []).append({"dest": f.dest, "action": action,
                                                       "rule": f.rule})
    kinds = {c.item.relpath: c for c in collection.items}
    skipped = dict(accounting.skipped) | {rel: "" for rel in accounting.unclassified}
    base = os.path.commonpath([i.relpath for i in delivery.items]) if len(delivery.items) > 1 else ""
    base = base if base and not any(i.relpath == base for i in delivery.items) else ""
    items = []
    with tempfile.TemporaryDirectory(prefix="qa2-inspect-") as tmp, facts.scratch(tmp):
        for item in delivery.items:
            c = kinds.get(item.relpath)
            fate = fates.get(item.relpath) or [{"dest": "", "action": "skip", "rule": ""}]
            items.append({
                "relpath": item.relpath, "shown": item.relpath[len(base) + 1:] if base else item.relpath,
                "type": str(item.type), "size": item.size, "table_type": item.table_type,
                "kind": c.kind if c else UNCLASSIFIED, "skip": skipped.get(item.relpath, ""),
                "fate": fate, "facts": (got := facts.facts(delivery.root, item)).to_json(),
                "facts_line": got.summary()})
    casaenv.drain()  # shown per item, in its facts' notes
    return {"plugin": decision.plugin, "style": delivery.style.name,
            "claims": [_claim_json(r) for r in decision.ranked], "base": base,
            "casatools": casaenv.version() if casaenv.tools() else f"none: {casaenv.reason()}",
            "items": items,
            "findings": [{"level": str(f.level), "rule": f.rule, "path": f.path,
                          "message": f.message} for f in collection.findings]}


def _claim_json(r: RankedClaim) -> dict:
    return {"plugin": r.plugin, "score": r.claim.score, "reason": r.claim.reason,
            "evidence": list(r.claim.evidence)}
