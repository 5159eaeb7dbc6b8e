"""``package``: scan -> detect -> collect -> layout -> plan -> validate -> write -> report.

No Typer here: the CLI and the CASA-style API both call :func:`package` and get a
:class:`~qa2core.report.Report` or a :class:`~qa2core.errors.Qa2Error`. The path of one run,
module by module, is in docs/architecture.md.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from qa2core.bulk import fewer_collections
from qa2core.data import casaenv, facts
from qa2core.errors import Qa2Error, UsageError, ValidationFailed
from qa2core.hooks.manager import Decision, Qa2Plugins, RankedClaim, get_plugin_manager
from qa2core.hooks.model import (
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
from qa2core.planning import naming, ous, paths
from qa2core.planning import piscript as pi
from qa2core.planning.plan import Plan, fold_links
from qa2core.planning.requests import STAGE_MODES as STAGE_MODES  # re-exported
from qa2core.planning.requests import PackageRequest, check_paths
from qa2core.planning.requests import resolve_piscript as resolve_piscript  # re-exported
from qa2core.planning.scan import scan
from qa2core.planning.styles import Style, resolve_style
from qa2core.report import FileRecord, Meter, Report
from qa2core.writing import export, readme
from qa2core.writing.build import BuildRequest, BuildResult, PublishedWithFault, write_package
from qa2core.writing.fileops import SourceChanged

# ---------------------------------------------------------------------------- inputs

# The request (options parsed, typed, defaulted and checked) is qa2core.planning.requests's, one model
# for the CLI, the CASA API and qa2 batch; these names stay importable from here.
Request = PackageRequest
_check_paths = check_paths


# ---------------------------------------------------------------------------- planning


# Copy and compress threads for big files when --jobs is not given: 4, as verify's hashing
# threads, whatever the CPU count; a big copy waits on the disk as much as it hashes (on 2 CPUs
# the large bench case took 3.1-3.2 s with 3 or 4 threads, 3.5 s with 2). Small files use at
# most one thread per CPU (qa2core.writing.execute; docs/casa-and-io.md 3.7).
DEFAULT_JOBS = 4


def _core_placements(style: Style, mode: Mode, piscript: Path | None,
                     warnings: list[str], member_token: str | None = None) -> list[Placement]:
    """The PI script is everybody's: the core places it (docs/domain.md §3.6), named after the
    member in the Cycle >= 5 styles (qa2core.planning.naming)."""
    dest = naming.piscript_dest(member_token)
    if piscript is not None:
        with open(piscript, "rb") as fh:
            data = fh.read(pi.MAX_BYTES + 1)
        bad = pi.content_problem(data) if len(data) <= pi.MAX_BYTES else "it is over 4 MiB"
        if bad:  # every mode: the rehearsal refuses what the real run refuses
            raise Qa2Error(f"{piscript}: --piscript is not a scriptForPI: {bad} "
                           "[script.piscript_content]")
        wrong = pi.identity(piscript.name, data[:pi.HEAD])
        if wrong:  # every mode, as above
            raise Qa2Error(f"{piscript}: --piscript: {wrong} [script.piscript_identity]")
        return [Placement(dest, Action.COPY, external=piscript, rule="core.piscript")]
    if not style.needs_piscript:
        return []
    if mode is Mode.FAKE:
        warnings.append(f"no --piscript given: {dest} is an empty placeholder; "
                        "the real run needs --piscript")
        return [Placement(dest, Action.EMPTY, rule="core.piscript")]
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
    raw = {i.relpath: (f"raw data (an ASDM linked from {i.outside}, outside ORIGPATH): "
                       "delivered by the archive, never in the package")
           for i in delivery.items if i.outside}
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
    skipped += [(rel, raw[rel]) for rel in unclassified if rel in raw]
    return Accounting(tuple(packable), tuple(skipped),
                      tuple(rel for rel in unclassified if rel not in raw))


_QA_LIKE = re.compile(r"qa2|report", re.IGNORECASE)


def _lost_qa(accounting: Accounting) -> list[str]:
    """QA material left out matters to the PI: one WARN per file, whoever missed it."""
    lost = [rel for rel in accounting.unclassified if _QA_LIKE.search(rel)]
    lines = [f"{rel}: QA report not packaged (no plugin rule takes it) [qa.not_packaged]"
             for rel in lost[:10]]
    if len(lost) > 10:
        lines.append(f"... and {len(lost) - 10} more QA file(s) not packaged (see --json)")
    return lines


def _readme_skip(accounting: Accounting, req: Request) -> Accounting:
    """The rule's reason for a ``README.header*`` left out ("pass it with --readme") is true
    only when no --readme was given: with one, say what became of this file."""
    from qa2core.planning.rules import COMMON_SKIPS

    advice = next(r.skip for r in COMMON_SKIPS if r.kind == "readme_header")
    if req.readme is None or not any(reason == advice for _rel, reason in accounting.skipped):
        return accounting
    given = req.readme.resolve()

    def reason(rel: str) -> str:
        if (req.root / rel).resolve() == given:
            return "README header given with --readme: its text heads README, not shipped as a file"
        return f"README header not used: README's header is the --readme file {req.readme}"

    skipped = tuple((rel, reason(rel) if why == advice else why) for rel, why in accounting.skipped)
    return replace(accounting, skipped=skipped)


def _ebs(names) -> frozenset[str]:
    """EB UIDs named by the scripts and calibration files of a member (member-relative names)."""
    from qa2core.hooks.model import UID

    return frozenset(m.group(0) for n in names if n.startswith(("script/", "calibration/"))
                     for m in [UID.search(n.rpartition("/")[2])] if m)


def _refuse_duplicate(pack: Path, plan: Plan, force: bool) -> list[str]:
    """``--append member`` of EBs an existing member already holds: the same SB packaged twice
    would give a second identical member. Refused unless ``force``; EBs shared only in part
    are a warning."""
    new = _ebs(f.dest for f in plan.files)
    if not new or not pack.is_dir():
        return []
    out = []
    for member in ous.members_of(pack):
        held = _ebs(str(p.relative_to(pack / member)) for top in ("script", "calibration")
                    if (pack / member / top).is_dir() for p in (pack / member / top).iterdir())
        if held == new and not force:
            raise Qa2Error(f"{pack / member}: already holds EB(s) {', '.join(sorted(new))}, the "
                           "EBs of this run: --append member would add a second member of the "
                           "same SB; pass --force to add it anyway [append.duplicate]")
        if held & new and held != new:
            out.append(f"{pack / member}: already holds EB(s) {', '.join(sorted(held & new))} "
                       "of this run [append.duplicate]")
        elif held == new:
            out.append(f"{pack / member}: holds the same EB(s) {', '.join(sorted(new))}; added "
                       "anyway (--force) [append.duplicate]")
    return out


# ---------------------------------------------------------------------------- the run


def _request(origpath, packpath, readme_path, piscript, style, mode, append, noms, ous_uids,
             purpose: Purpose, jobs: int | None = None, plugin: str | None = None) -> Request:
    return PackageRequest.from_options(origpath, packpath, readme=readme_path, piscript=piscript,
                                       style=style, mode=mode, append=append, noms=noms,
                                       plugin=plugin, jobs=jobs, ous_uids=ous_uids, purpose=purpose)


@fewer_collections()
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
    force: bool = False,
) -> Report:
    """Package ORIGPATH into PACKPATH (QA_Packager). Raises Qa2Error on refusal.

    ``force``: add an ``--append member`` whose EBs an existing member already holds
    (refused otherwise, rule ``append.duplicate``).

    ``purpose=Purpose.STAGE`` is QA_Pipeline_Stager (use :func:`stage`): the README is the
    header alone, no ticket zip is written, and plugins are told so through the options.
    """
    req = _request(origpath, packpath, readme_path, piscript, style, mode, append, noms,
                   ous_uids, Purpose(purpose), jobs, plugin)
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
    warnings = [*scan_warnings]
    unnamed: list[str] = []  # a real run of a Cycle >= 5 style without UIDs: refused below
    uids, token = naming.member_names(req, plugins, decision, delivery, warnings, unnamed)
    if token is not None:  # plugins name their <MOUS>. files with it (qa2_layout)
        delivery = replace(delivery, options=replace(options, member_token=token))

    collection = plugins.collect(decision.plugin, delivery, decision.context)
    refusal = [f.text() for f in collection.findings if f.level is Level.ERROR]
    if refusal:  # the input itself is refused: say why before planning anything
        raise ValidationFailed(f"refused: {len(refusal)} rule(s) broken", lines=tuple(refusal),
                               plugin=decision.plugin)
    own_pi = _own_piscript(req, items, warnings)
    accounting = _readme_skip(_account(delivery, collection, own_pi), req)
    laid = plugins.layout(decision.plugin, delivery, accounting.packable, decision.context)
    composed = plugins.contribute(decision, delivery, collection, laid)  # qa2_contribute
    accounting = composed.claimed(accounting)  # what a contribution places is recognised
    placements, folded = fold_links(
        [*laid, *composed.placements,
         *_core_placements(req.style, req.mode, req.piscript or own_pi, warnings, token)], items)
    accounting = replace(accounting, skipped=(*accounting.skipped, *folded))
    plan = composed.plan(req.root, items, placements, naming.readme_name(token))
    contributed = composed.findings
    del laid, placements, composed  # the plan holds what they said: 35 MB on 200,000 files
    leaving = [f"{req.root}/{i.relpath}: symbolic link leaving ORIGPATH (to {i.outside}): refused; "
               "copy it into the reduction or remove the link" for f in plan.files for i in f.items
               if i.outside]
    if leaving:  # a raw-data link is tolerated only while nothing would deliver it
        raise Qa2Error(f"{req.root}: {len(leaving)} problem(s) in ORIGPATH", lines=tuple(leaving))
    view = plan.view(req.style, decision.plugin, req.mode, req.purpose)
    findings = (*collection.findings, *contributed,
                *plugins.validate(view, decision.plugin, decision.context))
    warnings += [f.text() for f in findings if f.level is Level.WARN]
    warnings += _lost_qa(accounting)
    warnings += _input_warnings(req)

    errors = (*unnamed, *(f.text() for f in findings if f.level is Level.ERROR))
    if not dry_run:  # what the real run exports, every mode opens first (qa2core.writing.export.probe)
        errors += tuple(filter(None, (export.probe(f.sources[0], str(req.root))
                                      for f in plan.files if f.action is Action.EXPORT)))
    if errors:  # fake mode too: it is the rehearsal, and it must say what a real run refuses
        raise ValidationFailed(f"refused: {len(errors)} rule(s) broken", lines=errors,
                               plugin=decision.plugin)
    header = req.readme.read_bytes() if req.readme else b""
    if req.readme is None and req.purpose is Purpose.PACKAGE:  # a template, filled where qa2 can
        header, unfilled = readme.template_header(req.root, items, req.pack.name,
                                                  uids.member if uids else "")
        warnings.append("no --readme header given: README header written from a template; fill "
                        f"in {', '.join(unfilled) or 'nothing'} before delivery [readme.template]")

    modern = readme.Modern(token, req.pack.name, uids.member if uids else None,
                           req.style.pipeline) if token and req.style.readme_sections else None

    def readme_for(member_name: str) -> bytes:
        if req.purpose is Purpose.STAGE:
            return header
        return readme.assemble(header, member_name, plan.listing, modern)

    if req.append == "member":
        warnings += _refuse_duplicate(req.pack, plan, force)
    parts = (req, decision, plan, accounting, findings, warnings)
    space = _space(req, plan)
    if dry_run:  # the target as it would be now; the real run decides it under the lock
        member = ous.target(req.pack, req.append, uids).member
        return _report(*parts, member=member, readme_bytes=readme_for(member.rsplit("/", 1)[-1]),
                       built=None, space=space)
    if space[0] > space[1]:
        raise Qa2Error(f"{req.packpath}: not enough free space: the package needs about "
                       f"{space[0]} bytes, its file system has {space[1]} free; nothing was "
                       "written [space.free]", plugin=decision.plugin)
    built = _write(BuildRequest(
        plan, req.pack, req.root, req.mode, req.purpose, req.append, uids, readme_for,
        {"style": req.style.name, "plugin": decision.plugin},
        (*accounting.skipped, *((rel, "not recognised") for rel in accounting.unclassified)),
        jobs or DEFAULT_JOBS), say, meter, plugins)
    return _report(*parts, member=built.member, readme_bytes=b"", built=built, space=space)


def _write(request: BuildRequest, say: Callable[[str], None], meter: Meter | None,
           plugins: Qa2Plugins) -> BuildResult:
    """Write the package. A fault after its swap is told as it is: the new package is in place;
    it counts as done when its bookkeeping was completed and it verifies, else the run fails and
    says how to finish it (never "nothing was kept")."""
    try:
        return write_package(request, say, meter)
    except SourceChanged as exc:  # a hook that rewrote a source is named (qa2core.hooks.hookcheck)
        raise plugins.blame(exc) from exc.__cause__
    except PublishedWithFault as fault:
        if not fault.finished:
            raise
        from qa2core.checks.verify import verify

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
    size = built.readme.size if built else len(readme_bytes)
    files = [FileRecord(plan.readme, (str(req.readme),) if req.readme else (), "readme", size,
                        "core.readme", size if built else None)]
    for f in plan.files:
        result = done.get(f.dest)
        written = None if built is None else sum(w.size for w in result.written) if result else 0
        if result is not None:
            action = result.action
        elif not req.mode.real and f.action not in (Action.EMPTY, Action.EXPORT):
            action = "fake"
        else:
            action = "link" if req.mode is Mode.HARD and f.linkable else str(f.action)
        files.append(FileRecord(f.dest, f.sources, action, f.bytes, f.rule, written))
    if built:
        warnings = warnings + _build_warnings(built)
    warnings = warnings + casaenv.drain()  # CASA's SEVERE lines, relayed (qa2core.data.casaenv)
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
    """What qa2 sees in ORIGPATH (``qa2 inspect``): every item, its kind, facts and fate, even
    when the plan is refused (:func:`qa2core.inspection.inspect`)."""
    from qa2core import inspection

    return inspection.inspect(origpath, plugins, style)


def _claim_json(r: RankedClaim) -> dict:
    return {"plugin": r.plugin, "score": r.claim.score, "reason": r.claim.reason,
            "evidence": list(r.claim.evidence), "style": r.claim.style}
