"""Writing a planned package, all or nothing (docs/reliability.md).

The new unit is built in ``PACKPATH/.qa2-partial/`` under the package lock, then swapped in:
the previous package is moved aside only once the new one is complete, and comes back on any
error. Nothing is written outside PACKPATH and its ticket zip.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from qa2core import execute, journal, manifest, ous, ticket
from qa2core.errors import Qa2Error
from qa2core.lock import PackLock
from qa2core.plan import Plan
from qa2core.report import Meter, Report


def ticket_path(packpath: Path) -> Path:
    return packpath.with_name(packpath.name + ".ticket.zip")


PARTIAL = ".qa2-partial"


def partial_dir(packpath: Path) -> Path:
    return packpath / PARTIAL


def recover(packpath: Path) -> str | None:
    """Finish or undo a run that was killed, so PACKPATH holds a whole package or none.

    ``.qa2-partial/swap`` is written just before the swap. If the new unit had not moved in
    yet, the previous one comes back; if it had, the manifest, journal and ticket the run
    prepared are put in place. Returns a line saying what was done, or ``None``.
    """
    partial = partial_dir(packpath)
    if not partial.exists():
        return None
    marker = partial / "swap"
    note = f"{partial}: removed the leftovers of an interrupted run"
    if marker.exists():
        target = packpath / marker.read_text().strip()
        previous, new_unit = partial / "previous", partial / "unit"
        if new_unit.exists() and previous.exists() and not target.exists():
            os.rename(previous, target)  # the swap had not happened: keep the old package
            note = f"{target}: restored the previous package after an interrupted run"
        elif not new_unit.exists():
            for prepared, final in ((partial / "manifest", packpath / manifest.NAME),
                                    (partial / "journal", packpath / journal.NAME),
                                    (partial / "ticket.zip", ticket_path(packpath))):
                if prepared.exists():
                    os.replace(prepared, final)
            note = f"{target}: completed an interrupted swap"
    shutil.rmtree(partial)
    return note


def write_package(report: Report, plan: Plan, pack: Path, target: ous.Target, mode: str,
                  readme_bytes: bytes, jobs: int, say: Callable[[str], None],
                  with_ticket: bool = True, meter: Meter | None = None) -> None:
    """Build ``target.unit`` under the package lock and swap it in; on any error (Ctrl-C
    included) the previous package stays, and a PACKPATH this run created goes again."""
    created_pack = not pack.exists()
    pack.mkdir(exist_ok=True)
    try:
        with PackLock(pack):
            note = recover(pack)
            if note:
                report.notes.append(note)
            try:
                _build_and_swap(report, plan, pack, target, mode, readme_bytes, jobs, say,
                                with_ticket, meter)
            except BaseException:
                recover(pack)  # the previous package comes back if the swap had not finished
                raise
    except BaseException as exc:
        if created_pack and not (pack / target.unit).exists():
            shutil.rmtree(pack, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _os_error(exc) from exc
        raise


def _os_error(exc: OSError) -> Qa2Error:
    where = exc.filename or "?"
    if exc.errno == errno.ENOSPC:
        return Qa2Error(f"{where}: no space left on the device; nothing was kept from this run")
    return Qa2Error(f"{where}: {exc.strerror or exc}; nothing was kept from this run")


def _build_and_swap(report: Report, plan: Plan, pack: Path, target: ous.Target, mode: str,
                    readme_bytes: bytes, jobs: int, say: Callable[[str], None],
                    with_ticket: bool, meter: Meter | None) -> None:
    partial = partial_dir(pack)
    partial.mkdir()
    unit = partial / "unit"
    member_in_unit = target.member[len(target.unit):].lstrip("/")
    member_dir = unit / member_in_unit if member_in_unit else unit
    member_dir.mkdir(parents=True)

    say(f"writing {len(plan.files)} entries in mode {mode} ({plan.source_bytes()} bytes of source)")
    executor = execute.Executor(member_dir, target.member, mode, pack, journal.load(pack))
    if meter is not None:
        meter.start(plan.source_bytes(), len(plan.files))
    try:
        results = executor.run(plan.files, jobs, meter.advance if meter is not None else None)
    finally:
        if meter is not None:
            meter.stop()
    (member_dir / "README").write_bytes(readme_bytes)

    written = [w for r in results for w in r.written]
    readme_rel = f"{target.member}/README"
    written.append(execute.Written(readme_rel, _sha(readme_bytes), len(readme_bytes)))
    # The README is in the journal too, so `verify --fast` knows its size; its "sources"
    # never match a plan entry, so it is never reused.
    executor.new[readme_rel] = journal.Entry((), mode, "readme", written[-1].sha256 or "",
                                             len(readme_bytes),
                                             (member_dir / "README").stat().st_mtime_ns)
    _refine_actions(report, results)

    real = mode in ("copy", "hard")
    report.package_bytes = sum(w.size for w in written) if real else report.package_bytes
    zip_tmp = partial / "ticket.zip"
    if not with_ticket:
        pass  # qa2 stage: a staged tree has no ticket
    elif mode == "fake":
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
    return hashlib.sha256(data).hexdigest()


def _refine_actions(report: Report, results: list[execute.EntryResult]) -> None:
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
    if tables:  # only hard mode copies a table on purpose
        report.warnings.append(f"{len(tables)} CASA table(s) copied, not hard-linked, because "
                               f"CASA rewrites tables in place: {', '.join(tables)}")
