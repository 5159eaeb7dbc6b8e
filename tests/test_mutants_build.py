"""Faults during a package run, injected in-process (a monkeypatched write), and the message a
user reads for each: the cheap cousins of tests/test_faults.py's strace runs, which are too slow
for `make mutate` (docs/reliability.md, "Mutation testing")."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.errors import Qa2Error
from qa2core.planning import paths
from qa2core.writing import build, fileops


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "2015.1.00123.S"


def pack(pm, src, dst, piscript, header, **kw):
    kw.setdefault("mode", "copy")
    return engine.package(src, dst, piscript=piscript, plugins=pm, readme_path=header, **kw)


def _fail_journal_write(monkeypatch, exc: OSError) -> None:
    real = fileops.write_durable

    def write_durable(path, data, *a, **kw):
        if str(path).endswith("/partial/journal"):
            raise exc
        return real(path, data, *a, **kw)

    monkeypatch.setattr(fileops, "write_durable", write_durable)


@pytest.mark.parametrize(("exc", "line"), [
    (OSError(errno.ENOSPC, "No space left on device"),
     "{dst}: no space left on the device; nothing was kept from this run"),
    (OSError(errno.ENOSPC, "No space left on device", "/x/full"),
     "/x/full: no space left on the device; nothing was kept from this run"),
    (OSError(errno.EACCES, "Permission denied", "/x/locked"),
     "/x/locked: not readable or writable (permission denied); nothing was kept from this run"),
    (OSError(errno.EACCES, "Permission denied"),
     "(no path): not readable or writable (permission denied); nothing was kept from this run"),
    (OSError(errno.EIO, "Input/output error"),
     "(no path): Input/output error; nothing was kept from this run"),
    (OSError(errno.EIO, None),
     "(no path): [Errno 5] None; nothing was kept from this run"),
])
def test_a_fault_before_the_swap_keeps_nothing_and_says_where(toy_pm, toy_tree, dst, piscript,
                                                              header, monkeypatch, exc, line):
    _fail_journal_write(monkeypatch, exc)
    with pytest.raises(Qa2Error) as caught:
        pack(toy_pm, toy_tree, dst, piscript, header)
    assert str(caught.value) == line.format(dst=dst)
    assert sorted(p.name for p in dst.parent.iterdir()) == []  # no PACKPATH, no PACKPATH.qa2


def test_a_fault_before_the_swap_of_a_rerun_keeps_the_package_and_its_bookkeeping(
        toy_pm, toy_tree, dst, piscript, header, monkeypatch):
    pack(toy_pm, toy_tree, dst, piscript, header)
    journal = paths.journal_file(dst).read_bytes()
    _fail_journal_write(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(Qa2Error, match="no space left"):
        pack(toy_pm, toy_tree, dst, piscript, header)
    assert paths.journal_file(dst).read_bytes() == journal
    assert verify(dst, plugins=toy_pm).ok


def _fault_after_swap(monkeypatch, exc: BaseException, recovery_fails: bool = False) -> None:
    real_finish, real_recover = build._finish_swap, build.recover
    swapped = []

    def finish(*a, **kw):
        real_finish(*a, **kw)
        if not swapped:  # once: recovery finishes the swap again, unharmed
            swapped.append(True)
            raise exc

    def recover(pack):
        if swapped and recovery_fails:
            raise OSError(errno.EIO, "Input/output error")
        return real_recover(pack)

    monkeypatch.setattr(build, "_finish_swap", finish)
    monkeypatch.setattr(build, "recover", recover)


@pytest.mark.parametrize(("exc", "what"), [
    (OSError(errno.EIO, "Input/output error", "/x/dir"), "/x/dir: Input/output error"),
    (OSError(errno.EIO, "Input/output error"), "[Errno 5] Input/output error"),
    (RuntimeError("odd"), "odd"),
    (RuntimeError(), "RuntimeError"),
])
def test_a_fault_after_the_swap_says_the_new_package_is_in_place(toy_pm, toy_tree, dst, piscript,
                                                                 header, monkeypatch, exc, what):
    _fault_after_swap(monkeypatch, exc)
    report = pack(toy_pm, toy_tree, dst, piscript, header)  # finished, and it verifies: done
    line = (f"{dst}: the new package is in place; a fault after it was swapped in ({what}): its "
            "manifest, journal and ticket were completed; it verifies: the run counts as done")
    assert line in json.dumps(report.to_json())
    monkeypatch.undo()
    assert verify(dst, plugins=toy_pm).ok


def test_a_fault_after_the_swap_whose_recovery_fails_says_to_run_again(
        toy_pm, toy_tree, dst, piscript, header, monkeypatch):
    _fault_after_swap(monkeypatch, OSError(errno.EIO, "Input/output error", "/x/dir"),
                      recovery_fails=True)
    with pytest.raises(build.PublishedWithFault) as caught:
        pack(toy_pm, toy_tree, dst, piscript, header)
    assert str(caught.value) == (f"{dst}: the new package is in place; a fault after it was "
                                 "swapped in (/x/dir: Input/output error): its manifest, journal "
                                 "or ticket could not be completed: run qa2 package again (or qa2 "
                                 "tar) to complete them")
    assert not caught.value.finished


def test_the_journal_records_the_readme_the_run_and_keeps_other_units(toy_pm, toy_tree, tmp_path,
                                                                     piscript):
    """What a re-run and verify --fast read back: the README's entry (no sources, its bytes,
    dated by the newest source), the run record, every member's record; an append keeps the
    entries of the units it does not replace."""
    import hashlib

    from qa2core import engine
    from qa2core.writing import journal

    pack = tmp_path / "out" / "2015.1.00123.S"
    pack.parent.mkdir()
    said: list[str] = []
    engine.package(toy_tree, pack, piscript=piscript, plugins=toy_pm, mode="copy",
                   progress=said.append)
    assert any(s.startswith("writing ") and s.endswith(" source bytes)") and "in mode copy (" in s
               for s in said), said
    book = journal.load(pack)
    member = "sg_ouss_id/group_ouss_id/member_ouss_id"
    readme = pack / member / "README"
    newest = max(p.stat().st_mtime_ns for p in toy_tree.rglob("*") if p.is_file() and p.name not in
                 ("toy.marker", "notes.txt"))
    assert book.entries[f"{member}/README"] == journal.Entry(
        (), "copy", "readme", hashlib.sha256(readme.read_bytes()).hexdigest(),
        readme.stat().st_size, readme.stat().st_mtime_ns)
    assert readme.stat().st_mtime_ns == newest
    assert book.run == {"purpose": "package", "mode": "copy", "style": "", "plugin": "toy"}
    assert book.members == {member: book.run}
    first = {k: v for k, v in book.entries.items()}
    engine.package(toy_tree, pack, piscript=piscript, plugins=toy_pm, mode="copy", append="group")
    again = journal.load(pack)
    assert {k: v for k, v in again.entries.items() if k.startswith("sg_ouss_id/group_ouss_id/")} == first
    assert sorted(again.members) == sorted([member, "sg_ouss_id/group_ouss_2_id/member_ouss_id"])
    said.clear()
    engine.package(toy_tree, tmp_path / "out" / "F", piscript=piscript, plugins=toy_pm, mode="fake",
                   progress=said.append)
    assert any("bytes of source, as empty placeholders)" in s for s in said), said
