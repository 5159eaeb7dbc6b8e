"""``package``: scan -> detect -> collect -> layout -> plan -> validate -> execute -> report.

No Typer here: the CLI and the CASA-style API both call :func:`package` and get a
:class:`Report` or a :class:`~qa2core.errors.Qa2Error`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from qa2core import ous, readme
from qa2core.build import ticket_path, write_package
from qa2core.errors import Qa2Error, UsageError, ValidationFailed
from qa2core.manager import Qa2Plugins, RankedClaim, get_plugin_manager
from qa2core.model import (
    UNCLASSIFIED,
    Action,
    Collected,
    Delivery,
    Level,
    PackageOptions,
    Placement,
)
from qa2core.plan import PISCRIPT_DEST, PROJECT_CODE, Plan, make_plan
from qa2core.report import Meter, Report
from qa2core.scan import scan
from qa2core.styles import Style, resolve_style

MODES = ("fake", "ticket", "copy", "hard")
STAGE_MODES = ("copy", "hard", "fake")


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
    meter: Meter | None = None,
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
    given_uids = ous.parse_uids(ous_uids) if ous_uids else None  # usage error before any work
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

    uids = given_uids or plugins.ous_uids(chosen, delivery)
    target = ous.target(pack, append, uids)
    report.member = target.member
    report.listing = plan.listing()
    header = readme_file.read_bytes() if readme_file else b""
    readme_bytes = (header if purpose == "stage" else
                    readme.assemble(header, target.member.rsplit("/", 1)[-1], report.listing))
    _describe(report, plan, mode, readme_file, readme_bytes)

    errors = [f.line() for f in report.findings if f.level is Level.ERROR]
    if errors:  # fake mode too: it is the rehearsal, and it must say what a real run refuses
        report.errors = errors
        raise ValidationFailed(f"refused: {len(errors)} rule(s) broken", lines=tuple(errors))
    if dry_run:
        return report
    write_package(report, plan, pack, target, mode, readme_bytes,
                  jobs or min(4, os.cpu_count() or 1), say, with_ticket=purpose == "package",
                  meter=meter)
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
    meter: Meter | None = None,
) -> Report:
    """Stage a pipeline run into a delivery-shaped tree (QA_Pipeline_Stager).

    The same machinery as :func:`package`; the plugin that claims the run decides the layout.
    The member README is ``pipe_readme`` unchanged (empty when not given, as JAO's pkgPipe did).
    """
    return package(pipeline_root, staged_root, readme_path=pipe_readme, piscript=piscript,
                   mode=mode or "copy", plugin=plugin, dry_run=dry_run, jobs=jobs,
                   plugins=plugins, progress=progress, purpose="stage", meter=meter)


def load_delivery(origpath: Path | str, style: str = "") -> Delivery:
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
    return plugins.choose(load_delivery(origpath))


def inspect(origpath: Path | str, plugins: Qa2Plugins | None = None) -> dict:
    """What qa2 sees in ORIGPATH and how the winning plugin classifies it (``qa2 inspect``)."""
    plugins = plugins or get_plugin_manager()
    delivery = load_delivery(origpath)
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
