"""``package``: scan -> detect -> collect -> layout -> plan -> validate -> execute -> report.

No Typer here: the CLI and the CASA-style API both call :func:`package` and get a
:class:`Report` or a :class:`~qa2core.errors.Qa2Error`.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qa2core import execute, journal, manifest, ous, readme, ticket
from qa2core.errors import Qa2Error, UsageError, ValidationFailed
from qa2core.lock import PackLock
from qa2core.manager import Qa2Plugins, RankedClaim, get_plugin_manager
from qa2core.model import (
    UNCLASSIFIED,
    Action,
    Collected,
    Delivery,
    Finding,
    Level,
    PackageOptions,
    Placement,
)
from qa2core.plan import PISCRIPT_DEST, PROJECT_CODE, Plan, make_plan
from qa2core.scan import scan
from qa2core.styles import Style, resolve_style

MODES = ("fake", "ticket", "copy", "hard")
STAGE_MODES = ("copy", "hard", "fake")


@dataclass
class Report:
    """What a run did (or, with dry_run, would do); ``to_json`` is the ``--json`` object."""

    plugin: str
    style: str
    mode: str
    append: str
    packpath: str
    member: str = ""
    dry_run: bool = False
    claims: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    unclassified: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    package_bytes: int = 0
    ticket: str = ""
    notes: list[str] = field(default_factory=list)
    listing: list[str] = field(default_factory=list)  # member-relative, as in the README

    def to_json(self) -> dict:
        return {
            "plugin": self.plugin, "style": self.style, "mode": self.mode,
            "append": self.append, "packpath": self.packpath, "member": self.member,
            "dry_run": self.dry_run, "claims": self.claims, "files": self.files,
            "skipped": self.skipped, "unclassified": self.unclassified,
            "findings": [f.__dict__ | {"level": str(f.level)} for f in self.findings],
            "warnings": self.warnings, "errors": self.errors,
            "package_bytes": self.package_bytes, "ticket": self.ticket, "notes": self.notes,
            "listing": self.listing,
        }


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
    if orig.is_relative_to(pack):
        raise Qa2Error(f"{packpath}: PACKPATH must not contain ORIGPATH {origpath} "
                       "(append none would delete the source)")
    if pack.exists() and not pack.is_dir():
        raise Qa2Error(f"{packpath}: PACKPATH exists and is not a directory")
    if not pack.parent.is_dir():
        raise Qa2Error(f"{pack.parent}: parent directory of PACKPATH does not exist")
    zip_path = ticket_path(pack)
    if zip_path.exists() and not zip_path.is_file():
        raise Qa2Error(f"{zip_path}: ticket zip path exists and is not a file")
    return orig, pack


def ticket_path(packpath: Path) -> Path:
    return packpath.with_name(packpath.name + ".ticket.zip")


def resolve_piscript(piscript: Path | None) -> Path | None:
    """A file, or a directory holding ``scriptForPI.py`` (original page: both forms)."""
    if piscript is None or str(piscript) == "":
        return None
    if piscript.is_dir():
        candidate = piscript / "scriptForPI.py"
        if not candidate.is_file():
            raise UsageError(f"{piscript}: --piscript directory holds no scriptForPI.py")
        return candidate.resolve()
    if not piscript.is_file():
        raise UsageError(f"{piscript}: --piscript does not exist")
    return piscript.resolve()


def _check_choice(value: str, valid: tuple[str, ...], what: str) -> str:
    value = value or valid[0]
    if value not in valid:
        raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


# ---------------------------------------------------------------------------- planning


def _core_placements(style: Style, mode: str, piscript: Path | None,
                     warnings: list[str]) -> list[Placement]:
    """The PI script is everybody's: the core places it (domain.md §3.6)."""
    if piscript is not None:
        return [Placement(PISCRIPT_DEST, Action.COPY, external=piscript, rule="core.piscript")]
    if not style.needs_piscript:
        return []
    if mode == "fake":
        warnings.append("no --piscript given: script/scriptForPI.py is an empty placeholder; "
                        "the real run needs --piscript")
        return [Placement(PISCRIPT_DEST, Action.EMPTY, rule="core.piscript")]
    raise Qa2Error(f"missing scriptForPI: style {style.name or '(none)'} needs --piscript "
                   "(the file, or the directory holding scriptForPI.py) in mode " + mode)


def _account(delivery: Delivery, collected: tuple[Collected, ...],
             report: Report) -> tuple[Collected, ...]:
    """Split collected items into packable ones, skipped and unclassified; nothing is lost."""
    known = {c.item.relpath for c in collected}
    packable = []
    for c in collected:
        if c.skip:
            report.skipped.append({"source": str(delivery.root / c.item.relpath),
                                   "reason": c.skip})
        elif c.kind == UNCLASSIFIED:
            report.unclassified.append(c.item.relpath)
        else:
            packable.append(c)
    report.unclassified += [i.relpath for i in delivery.items if i.relpath not in known]
    if report.unclassified:
        shown = ", ".join(report.unclassified[:20])
        more = f" and {len(report.unclassified) - 20} more" if len(report.unclassified) > 20 else ""
        report.warnings.append(f"{len(report.unclassified)} file(s) not classified and not "
                               f"packaged: {shown}{more}")
    return tuple(packable)


# ---------------------------------------------------------------------------- the run


def package(
    origpath: Path | str,
    packpath: Path | str,
    *,
    readme_path: Path | str | None = None,
    piscript: Path | str | None = None,
    style: str = "",
    mode: str = "fake",
    append: str = "none",
    noms: bool | None = None,
    plugin: str | None = None,
    dry_run: bool = False,
    jobs: int | None = None,
    plugins: Qa2Plugins | None = None,
    progress: Callable[[str], None] | None = None,
    purpose: str = "package",
    ous_uids: str | None = None,
) -> Report:
    """Package ORIGPATH into PACKPATH (QA_Packager). Raises Qa2Error on refusal.

    ``purpose="stage"`` is QA_Pipeline_Stager (use :func:`stage`): the README is the header
    alone, no ticket zip is written, and plugins are told so through the options.
    """
    mode = _check_choice(mode, STAGE_MODES if purpose == "stage" else MODES, "mode")
    append = _check_choice(append or "none", ous.APPEND_MODES, "append mode")
    resolved_style = resolve_style(style, noms)
    origpath, packpath = Path(origpath), Path(packpath)
    readme_file = Path(readme_path) if readme_path else None
    if readme_file is not None and not readme_file.is_file():
        raise UsageError(f"{readme_file}: --readme header file does not exist")
    pi = resolve_piscript(Path(piscript) if piscript else None)
    if ous_uids:
        ous.parse_uids(ous_uids)  # a bad value is a usage error before any work
    orig, pack = _check_paths(origpath, packpath)
    plugins = plugins or get_plugin_manager()
    say = progress or (lambda _msg: None)

    items, scan_warnings = scan(orig)
    if not items:
        raise Qa2Error(f"{origpath}: ORIGPATH is empty (no files to package)")
    options = PackageOptions(mode=mode, append=append, piscript=pi, readme=readme_file,
                             purpose=purpose)
    delivery = Delivery(orig, items, resolved_style, options)
    chosen, ranked = plugins.choose(delivery, plugin)
    report = Report(chosen, resolved_style.name, mode, append, str(packpath), dry_run=dry_run,
                    claims=[_claim_json(r) for r in ranked], warnings=list(scan_warnings))
    say(f"{chosen} claims {origpath} ({ranked[0].claim.reason if ranked else ''})")

    packable = _account(delivery, plugins.collect(chosen, delivery), report)
    placements = [*plugins.layout(chosen, delivery, packable),
                  *_core_placements(resolved_style, mode, pi, report.warnings)]
    plan = make_plan(orig, items, placements)

    report.findings = list(plugins.validate(plan.view(resolved_style, chosen, mode, purpose,
                                                      delivery), chosen))
    _input_warnings(report, readme_file, pack, purpose)

    uids = ous.parse_uids(ous_uids) if ous_uids else plugins.ous_uids(chosen, delivery)
    target = ous.target(pack, append, uids)
    report.member = target.member
    report.listing = plan.listing()
    header = readme_file.read_bytes() if readme_file else b""
    readme_bytes = (header if purpose == "stage" else
                    readme.assemble(header, target.member.rsplit("/", 1)[-1], plan.listing()))
    _describe(report, plan, mode, readme_file, readme_bytes)

    errors = [f.line() for f in report.findings if f.level is Level.ERROR]
    if errors:  # fake mode too: it is the rehearsal, and it must say what a real run refuses
        report.errors = errors
        raise ValidationFailed(f"refused: {len(errors)} rule(s) broken", lines=tuple(errors))
    if dry_run:
        return report
    _execute(report, plan, pack, target, mode, readme_bytes, jobs or min(4, os.cpu_count() or 1),
             say, with_ticket=purpose == "package")
    return report


def stage(
    pipeline_root: Path | str,
    staged_root: Path | str,
    *,
    mode: str = "copy",
    piscript: Path | str | None = None,
    pipe_readme: Path | str | None = None,
    plugin: str | None = None,
    dry_run: bool = False,
    jobs: int | None = None,
    plugins: Qa2Plugins | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Stage a pipeline run into a delivery-shaped tree (QA_Pipeline_Stager).

    The same machinery as :func:`package`; the plugin that claims the run decides the layout.
    The member README is ``pipe_readme`` unchanged (empty when not given, as JAO's pkgPipe did).
    """
    return package(pipeline_root, staged_root, readme_path=pipe_readme, piscript=piscript,
                   mode=mode or "copy", plugin=plugin, dry_run=dry_run, jobs=jobs,
                   plugins=plugins, progress=progress, purpose="stage")


def _delivery(origpath: Path | str, style: str = "") -> Delivery:
    """Scan ORIGPATH into a Delivery (for detect, inspect and tests)."""
    origpath = Path(origpath)
    if not origpath.is_dir():
        raise UsageError(f"{origpath}: ORIGPATH does not exist or is not a directory")
    items, _ = scan(origpath.resolve())
    if not items:
        raise Qa2Error(f"{origpath}: ORIGPATH is empty (no files to package)")
    return Delivery(origpath.resolve(), items, resolve_style(style), PackageOptions())


def detect(origpath: Path | str, plugins: Qa2Plugins | None = None,
           ) -> tuple[str, tuple[RankedClaim, ...]]:
    """The plugin that would package ORIGPATH, and every claim (``qa2 detect``)."""
    plugins = plugins or get_plugin_manager()
    return plugins.choose(_delivery(origpath))


def inspect(origpath: Path | str, plugins: Qa2Plugins | None = None) -> dict:
    """What qa2 sees in ORIGPATH and how the winning plugin classifies it (``qa2 inspect``)."""
    plugins = plugins or get_plugin_manager()
    delivery = _delivery(origpath)
    chosen, ranked = plugins.choose(delivery)
    by_rel = {c.item.relpath: c for c in plugins.collect(chosen, delivery)}
    items = []
    for item in delivery.items:
        c = by_rel.get(item.relpath)
        items.append({"relpath": item.relpath, "type": str(item.type), "size": item.size,
                      "table_type": item.table_type, "kind": c.kind if c else UNCLASSIFIED,
                      "skip": c.skip if c else ""})
    return {"plugin": chosen, "claims": [_claim_json(r) for r in ranked], "items": items}


def _input_warnings(report: Report, readme_file: Path | None, pack: Path, purpose: str) -> None:
    report.warnings += [f.line() for f in report.findings if f.level is Level.WARN]
    if not readme_file and purpose == "package":
        report.warnings.append("no --readme header given: README holds only the file listing")
    if not PROJECT_CODE.match(pack.name) and purpose == "package":  # JAO staged to <run>_<MOUS>
        report.warnings.append(f"{pack}: PACKPATH should be named after the project code "
                               "(like 2016.1.01435.S)")


def _claim_json(r: RankedClaim) -> dict:
    return {"plugin": r.plugin, "score": r.claim.score, "reason": r.claim.reason,
            "evidence": list(r.claim.evidence)}


def _describe(report: Report, plan: Plan, mode: str, readme_file: Path | None,
              readme_bytes: bytes) -> None:
    """Fill report.files from the plan (actions refined after execution)."""
    real = mode in ("copy", "hard")
    report.files = [{
        "source": str(readme_file) if readme_file else None,
        "dest": f"{report.member}/README", "action": "readme",
        "bytes": readme_file.stat().st_size if readme_file else 0,
    }]
    for f in plan.files:
        planned = str(f.action) if real or f.action is Action.EMPTY else "fake"
        if real and mode == "hard" and f.linkable:
            planned = "link"
        report.files.append({
            "source": str(f.sources[0]) if len(f.sources) == 1 else [str(s) for s in f.sources],
            "dest": f"{report.member}/{f.dest}", "action": planned, "bytes": f.bytes,
            "rule": f.rule,
        })
    report.package_bytes = len(readme_bytes) + plan.source_bytes()


def _execute(report: Report, plan: Plan, pack: Path, target: ous.Target, mode: str,
             readme_bytes: bytes, jobs: int, say: Callable[[str], None],
             with_ticket: bool = True) -> None:
    created_pack = not pack.exists()
    pack.mkdir(exist_ok=True)
    lock = PackLock(pack)
    try:
        lock.__enter__()
    except Qa2Error:
        if created_pack:
            pack.rmdir()
        raise
    try:
        note = execute.recover(pack)
        if note:
            report.notes.append(note)
        _build_and_swap(report, plan, pack, target, mode, readme_bytes, jobs, say, with_ticket)
    except BaseException as exc:
        # Undo: the previous package comes back if the swap had not finished.
        execute.recover(pack)
        lock.__exit__()
        if created_pack and not (pack / ous.SG).exists():
            shutil.rmtree(pack, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _os_error(exc) from exc
        raise
    lock.__exit__()


def _os_error(exc: OSError) -> Qa2Error:
    where = exc.filename or "?"
    if exc.errno == errno.ENOSPC:
        return Qa2Error(f"{where}: no space left on the device; nothing was kept from this run")
    return Qa2Error(f"{where}: {exc.strerror or exc}; nothing was kept from this run")


def _build_and_swap(report: Report, plan: Plan, pack: Path, target: ous.Target, mode: str,
                    readme_bytes: bytes, jobs: int, say: Callable[[str], None],
                    with_ticket: bool) -> None:
    partial = execute.partial_dir(pack)
    partial.mkdir()
    unit = partial / "unit"
    member_in_unit = target.member[len(target.unit):].lstrip("/")
    member_dir = unit / member_in_unit if member_in_unit else unit
    member_dir.mkdir(parents=True)

    say(f"writing {len(plan.files)} entries in mode {mode} ({plan.source_bytes()} bytes of source)")
    executor = execute.Executor(member_dir, target.member, mode, pack, journal.load(pack))
    results = executor.run(plan.files, jobs)
    (member_dir / "README").write_bytes(readme_bytes)

    written = [w for r in results for w in r.written]
    readme_rel = f"{target.member}/README"
    written.append(execute.Written(readme_rel, _sha(readme_bytes), len(readme_bytes)))
    _refine_actions(report, results, mode)

    real = mode in ("copy", "hard")
    report.package_bytes = sum(w.size for w in written) if real else report.package_bytes
    zip_tmp = partial / "ticket.zip"
    if mode == "fake":
        zip_tmp.touch()
    else:
        statement = ticket.size_statement(pack.name, target.member, report.package_bytes,
                                          len(written), measured=real)
        ticket.write(zip_tmp, readme_bytes, plan, statement)

    manifest_text = None
    if real:
        entries = _outside(_old_manifest(pack, target.unit), target.unit)
        entries.update({w.path: w.sha256 for w in written})
        manifest_text = manifest.format_lines(entries.items())
        (partial / "manifest").write_text(manifest_text)
        kept = _outside(journal.load(pack), target.unit)
        run = {"purpose": "stage" if not with_ticket else "package", "style": report.style,
               "plugin": report.plugin, "mode": mode}
        journal.save(partial / "journal", kept | executor.new, run)

    # The swap: old package aside, new one in, manifest and ticket, then the old one goes.
    final = pack / target.unit
    (partial / "swap").write_text(f"{target.unit}\n")
    if final.exists():
        os.rename(final, partial / "previous")
    os.rename(unit, final)
    if manifest_text is not None:
        os.replace(partial / "manifest", pack / manifest.NAME)
        os.replace(partial / "journal", pack / journal.NAME)
    else:  # a fake tree makes any earlier manifest a lie
        (pack / manifest.NAME).unlink(missing_ok=True)
        (pack / journal.NAME).unlink(missing_ok=True)
    if with_ticket:
        zip_final = ticket_path(pack)
        os.replace(zip_tmp, zip_final)
        report.ticket = str(zip_final)
    shutil.rmtree(partial)


def _old_manifest(pack: Path, unit: str) -> dict[str, str]:
    """Entries of the package being added to; hashed now if it had none (a fake package)."""
    if (pack / manifest.NAME).exists():
        return manifest.read(pack)
    entries: dict[str, str] = {}
    for top in (p for p in pack.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if top.name != unit:
            entries |= manifest.hash_tree(pack, top.name)
    return entries


def _outside(entries: dict, unit: str) -> dict:
    """Entries not below ``unit``, the directory this run replaces or adds."""
    return {k: v for k, v in entries.items() if not k.startswith(unit + "/")}


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _refine_actions(report: Report, results: list[execute.EntryResult], mode: str) -> None:
    by_dest = {f"{report.member}/{r.entry.dest}": r for r in results}
    for record in report.files:
        result = by_dest.get(record["dest"])
        if result is not None:
            record["action"] = result.action if not result.link_fallback else "copy"
    fallbacks = [r.entry.dest for r in results if r.link_fallback]
    if fallbacks:
        report.warnings.append(f"hard links refused by the file system for {len(fallbacks)} "
                               f"file(s) (e.g. {fallbacks[0]}): copied instead")
    tables = [r.entry.dest for r in results if r.copied_tables]
    if tables and mode == "hard":
        report.warnings.append(f"{len(tables)} CASA table(s) copied, not hard-linked, because "
                               f"CASA rewrites tables in place: {', '.join(tables)}")
