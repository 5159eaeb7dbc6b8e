"""Writing a planned package, all or nothing (docs/reliability.md): the one owner of every
side effect of a run.

Under the PACKPATH lock, in this order: recover an interrupted run, decide where the new unit
goes (the append target: decided inside the lock, so two appends cannot pick the same name),
build it in ``PACKPATH.qa2/partial/``, then swap it in. The previous package is moved aside
only once the new one is complete, and comes back on any error. The result is a frozen record
of what is on disk.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from qa2core.checks import content
from qa2core.errors import Qa2Error
from qa2core.hooks.model import Mode, Purpose
from qa2core.planning import ous, paths
from qa2core.planning.plan import Plan
from qa2core.report import Meter
from qa2core.writing import fileops, journal, manifest, ticket
from qa2core.writing.execute import EntryResult, Executor, Written
from qa2core.writing.lock import PackLock


@dataclass(frozen=True)
class BuildRequest:
    plan: Plan
    pack: Path
    root: Path  # ORIGPATH, resolved
    mode: Mode
    purpose: Purpose
    append: str
    uids: ous.OusUids | None
    readme_for: Callable[[str], bytes]  # member directory name -> README bytes
    run_info: dict[str, str]  # style, plugin: recorded in the journal
    left_out: tuple[tuple[str, str], ...]  # (ORIGPATH-relative path, reason): in the journal
    jobs: int


@dataclass(frozen=True)
class BuildResult:
    member: str  # relative to PACKPATH
    entries: tuple[EntryResult, ...]
    readme: Written
    package_bytes: int
    ticket: str
    notes: tuple[str, ...]


class AfterSwap(Exception):
    """A fault after the new unit was renamed into place: the package is the new one, and only
    its bookkeeping (manifest, journal, ticket) may be unfinished."""

    def __init__(self, cause: BaseException, result: BuildResult) -> None:
        super().__init__(str(cause))
        self.cause, self.result = cause, result


class PublishedWithFault(Qa2Error):
    """The new package is in place, but the run met a fault after its swap. ``finished`` says
    whether its manifest, journal and ticket were completed (by recovery) all the same."""

    def __init__(self, pack: Path, cause: BaseException, finished: bool,
                 result: BuildResult) -> None:
        what = (f"{cause.filename}: {cause.strerror}" if isinstance(cause, OSError) and
                cause.filename else str(cause) or type(cause).__name__)
        self.pack, self.finished, self.what, self.result = pack, finished, what, result
        state = ("its manifest, journal and ticket were completed" if finished else
                 "its manifest, journal or ticket could not be completed: run qa2 package "
                 "again (or qa2 tar) to complete them")
        super().__init__(f"{pack}: the new package is in place; a fault after it was swapped "
                         f"in ({what}): {state}")


def recover(pack: Path) -> str | None:
    """Finish or undo a run that was killed, so PACKPATH holds a whole package or none.

    ``partial/swap`` is written just before the swap. If the new unit had not moved in yet, the
    previous one comes back; if it had, the manifest, journal and ticket the run prepared are
    put in place. Returns a line saying what was done, or ``None``. Call under the lock.
    """
    partial = paths.partial_dir(pack)
    if not partial.exists():
        return None
    marker = partial / "swap"
    note = f"{partial}: removed the leftovers of an interrupted run"
    swap = swap_plan(marker)
    if swap is not None:
        target = pack / swap["unit"]
        previous, new_unit = partial / "previous", partial / "unit"
        if new_unit.exists():
            if previous.exists() and not target.exists():
                os.rename(previous, target)  # the swap had not happened: keep the old package
                note = f"{target}: restored the previous package after an interrupted run"
        else:
            _finish_swap(pack, partial, swap["real"], swap["ticket"])
            note = f"{target}: completed an interrupted swap"
    shutil.rmtree(partial)
    return note


def swap_plan(marker: Path) -> dict | None:
    """The swap marker, or None when there is none or it was cut short while being written
    (disk full, kill -9): a swap's first rename comes only after the whole marker is written."""
    try:
        return json.loads(marker.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _finish_swap(pack: Path, partial: Path, real: bool, with_ticket: bool) -> None:
    if (partial / "manifest").exists():
        os.replace(partial / "manifest", pack / manifest.NAME)
    elif not real:  # a rehearsal's tree makes any earlier manifest a lie
        (pack / manifest.NAME).unlink(missing_ok=True)
    if (partial / "journal").exists():
        os.replace(partial / "journal", paths.journal_file(pack))
    if with_ticket and (partial / "ticket.zip").exists():
        os.replace(partial / "ticket.zip", paths.ticket_zip(pack))


def write_package(request: BuildRequest, say: Callable[[str], None],
                  meter: Meter | None = None) -> BuildResult:
    """Build and swap in under the lock. On any error (Ctrl-C included) the previous package
    stays, and a PACKPATH this run created goes again; nothing another run made is touched."""
    pack = request.pack
    state = paths.state_dir(pack)
    fresh_state = not state.exists()
    with PackLock(pack, str(request.purpose)):
        notes = [n for n in (recover(pack),) if n]
        created = not pack.exists()
        try:
            pack.mkdir(exist_ok=True)
            target = ous.target(pack, request.append, request.uids)
            _refuse_mixing(pack, target, request.mode)
            kept_lines = _kept(pack, target.unit)
            _refuse_damaged(pack, kept_lines)
            return _build_and_swap(request, target, notes, say, meter, kept_lines)
        except AfterSwap as exc:  # the package is the new one: say so, never "nothing kept"
            try:
                recover(pack)  # completes the bookkeeping from the swap marker, if still there
                finished = not paths.partial_dir(pack).exists()
            except OSError:
                finished = False
            raise PublishedWithFault(pack, exc.cause, finished, exc.result) from exc.cause
        except BaseException as exc:
            recover(pack)  # the previous package comes back if the swap had not finished
            if created and pack.is_dir() and not any(pack.iterdir()):
                pack.rmdir()
            if (fresh_state and not created) or (created and not pack.exists()):
                _drop_state(state)  # a refused first run leaves nothing behind
            if isinstance(exc, OSError):
                raise _os_error(exc, pack) from exc
            raise


def _refuse_mixing(pack: Path, target: ous.Target, mode: Mode) -> None:
    """A rehearsal (fake, ticket) never goes into a real package, nor real data into a
    rehearsal: the package would hold empty files beside real ones, or lose its manifest."""
    others = [m for m in ous.members_of(pack) if not (m + "/").startswith(target.unit + "/")]
    if not others:
        return
    # The bytes decide, not the manifest or the journal (either can be written by hand): a
    # unit holding a rehearsal's empty placeholders is a rehearsal.
    real = not any(content.is_rehearsal(str(pack / m)) for m in others)
    if real != mode.real:
        have = "real (copy or hard)" if real else "a rehearsal (fake or ticket)"
        raise Qa2Error(f"{pack}: holds {have} package ({others[0]}); a {mode} run cannot be "
                       "added to it. Rehearse into another PACKPATH, or repackage every unit "
                       "in one mode [append.mixed]")


def _kept(pack: Path, unit: str) -> dict[str, str] | None:
    """The manifest lines of the units this run keeps (all but ``unit``), read once; a member
    removed whole was removed on purpose and leaves with its lines. ``None``: no manifest."""
    if not (pack / manifest.NAME).is_file():
        return None
    members = {m for m in ous.members_of(pack) if not (m + "/").startswith(unit + "/")}
    if not members:  # every unit is replaced: the old manifest, even a damaged one, goes whole
        return {}
    try:
        listed = manifest.read(pack)
    except Qa2Error as exc:
        raise Qa2Error(f"{exc}; the units this run keeps cannot be carried over: check the "
                       "package with qa2 verify, or repackage it whole [manifest.line]") from None
    return {k: v for k, v in _outside(listed, unit).items()
            if "/".join(k.split("/")[:3]) in members}


def _refuse_damaged(pack: Path, kept: dict[str, str] | None) -> None:
    """Units this run keeps must still be what their manifest lists: an append onto a package
    whose files were removed by hand would carry the lie into the new manifest."""
    gone = sorted(k for k in kept or () if not os.path.lexists(pack / k))
    if gone:
        raise Qa2Error(f"{pack}: its manifest lists {len(gone)} file(s) that are gone (e.g. "
                       f"{gone[0]}): the package was changed by hand; check it with qa2 verify "
                       "and repackage the damaged unit before adding to it [append.damaged]")


def _drop_state(state: Path) -> None:
    """Remove bookkeeping this run created, when it holds nothing but the lock file."""
    if state.is_dir() and {p.name for p in state.iterdir()} <= {"lock"}:
        shutil.rmtree(state, ignore_errors=True)


def _os_error(exc: OSError, pack: Path) -> Qa2Error:
    where = exc.filename or "(no path)"
    if exc.errno == errno.ENOSPC:  # a failed write names no file; the full disk is PACKPATH's
        return Qa2Error(f"{exc.filename or pack}: no space left on the device; nothing was kept "
                        "from this run")
    if exc.errno == errno.EACCES:
        return Qa2Error(f"{where}: not readable or writable (permission denied); nothing was "
                        "kept from this run")
    return Qa2Error(f"{where}: {exc.strerror or exc}; nothing was kept from this run")


def _build_and_swap(request: BuildRequest, target: ous.Target, notes: list[str],
                    say: Callable[[str], None], meter: Meter | None,
                    kept_lines: dict[str, str] | None = None) -> BuildResult:
    pack, plan, mode = request.pack, request.plan, request.mode
    partial = paths.partial_dir(pack)
    partial.mkdir()
    unit = partial / "unit"
    member_in_unit = target.member[len(target.unit):].lstrip("/")
    member_dir = unit / member_in_unit if member_in_unit else unit
    member_dir.mkdir(parents=True)

    old = journal.load(pack)
    what = "source bytes" if mode.real else "bytes of source, as empty placeholders"
    say(f"writing {len(plan.files)} entries in mode {mode} ({plan.source_bytes()} {what})")
    executor = Executor(str(member_dir), target.member, mode, str(pack), str(request.root),
                        old.entries if old.run.get("mode") == str(mode) else {})
    if meter is not None:
        meter.start(plan.source_bytes(), len(plan.files))
    try:
        results = executor.run(plan.files, request.jobs, meter.advance if meter else None)
    finally:
        if meter is not None:
            meter.stop()
    readme_bytes = request.readme_for(target.member.rsplit("/", 1)[-1])
    readme_path = member_dir / plan.readme
    readme_path.write_bytes(readme_bytes)
    # Made files carry the newest source time, never the clock's: two runs over one source
    # give the same package and the same tar, byte for byte.
    stamp = max((i.mtime_ns for f in plan.files for i in f.items), default=0)
    os.utime(readme_path, ns=(stamp, stamp))
    readme = Written(f"{target.member}/{plan.readme}", hashlib.sha256(readme_bytes).hexdigest(),
                     len(readme_bytes))
    written = [w for r in results for w in r.written] + [readme]
    package_bytes = sum(w.size for w in written) if mode.real else len(readme_bytes) + plan.source_bytes()

    with_ticket = request.purpose is Purpose.PACKAGE
    if with_ticket:
        zip_tmp = partial / "ticket.zip"
        if mode is Mode.FAKE:
            zip_tmp.touch()
        else:
            statement = ticket.size_statement(pack.name, target.member, package_bytes,
                                              len(plan.files) + 1, measured=mode.real)
            ticket.write(zip_tmp, readme_bytes, plan, statement, stamp)

    entries = {k: v for r in results for k, v in r.journal}
    # The README is in the journal too, so `verify --fast` knows its size; it has no sources,
    # so no plan entry ever reuses it.
    entries[readme.path] = journal.Entry((), str(mode), "readme", readme.sha256, readme.size,
                                         readme_path.stat().st_mtime_ns)
    kept = {k: v for k, v in old.entries.items() if not k.startswith(target.unit + "/")}
    run = {"purpose": str(request.purpose), "mode": str(mode), **request.run_info}
    members = {m: r for m, r in old.members.items()
               if not m.startswith(target.unit + "/") and m != target.unit}
    members[target.member] = run
    fileops.write_durable(str(partial / "journal"), journal.dump(
        kept | entries if mode.real else {}, run, request.left_out, members).encode())
    if mode.real:
        listed = (dict(kept_lines) if kept_lines is not None else
                  _outside(_hash_units(pack, target.unit), target.unit))
        listed.update({w.path: w.sha256 for w in written})
        fileops.write_durable(str(partial / "manifest"),
                              manifest.encode(manifest.format_lines(listed.items())))
        os.utime(partial / "manifest", ns=(stamp, stamp))
    if mode.real:  # directories too, so the tar of two identical runs is identical
        for dirpath, _dirs, _files in os.walk(unit):
            os.utime(dirpath, ns=(stamp, stamp))

    # The swap: old unit aside, new one in, then manifest, journal and ticket. Everything the
    # renames publish is on disk first (a power cut must not leave names over empty files).
    result = BuildResult(target.member, tuple(results), readme, package_bytes,
                         str(paths.ticket_zip(pack)) if with_ticket else "", tuple(notes))
    final = pack / target.unit
    swap = {"unit": target.unit, "real": mode.real, "ticket": with_ticket}
    fileops.write_durable(str(partial / "swap"), json.dumps(swap).encode())
    fileops.sync_filesystem(str(partial))
    if final.exists():
        os.rename(final, partial / "previous")
    os.rename(unit, final)  # the point of no return: the new package is in place
    try:
        if mode.real:
            for parent in Path(target.unit).parents:
                if str(parent) != ".":
                    os.utime(pack / parent, ns=(stamp, stamp))
        _finish_swap(pack, partial, mode.real, with_ticket)
        for directory in {final.parent, pack, pack.parent, partial.parent}:
            fileops.fsync_dir(str(directory))
    except Exception as exc:  # Ctrl-C goes on as it is; recovery completes the swap
        raise AfterSwap(exc, result) from exc
    try:
        shutil.rmtree(partial)
    except OSError as exc:  # the package is whole; the next run removes the scratch space
        return replace(result, notes=(*result.notes, f"{partial}: scratch space not removed "
                                      f"({exc.strerror}); the next run removes it"))
    return result


def _hash_units(pack: Path, unit: str) -> dict[str, str]:
    """Entries of the other units of a package that has no manifest (a rehearsal's), hashed."""
    entries: dict[str, str] = {}
    for top in (p for p in pack.iterdir() if p.is_dir()):
        if top.name != unit:
            entries |= manifest.hash_tree(pack, top.name)
    return entries


def _outside(entries: dict, unit: str) -> dict:
    """Entries not below ``unit``, the directory this run replaces or adds."""
    return {k: v for k, v in entries.items() if not k.startswith(unit + "/")}
