"""A package proves itself by its bytes (issue 17): verify, tar and re-runs trust content,
never bookkeeping that a user or a bug can rewrite (manifest, journal, mtime, lock)."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.errors import Qa2Error
from qa2core.planning import paths
from qa2core.writing import build, fileops, manifest
from qa2core.writing.archive import make_tars

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"


def pack(pm, src, dst, piscript, **kw):
    return engine.package(src, dst, piscript=piscript, plugins=pm, **kw)


@pytest.fixture
def dst(tmp_path):
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "2015.1.00123.S"


def handmade_manifest(pack_dir: Path) -> None:
    """What a user does to make a tree 'verify': ``find . -type f | xargs sha256sum``."""
    lines = []
    for path in sorted(p for p in pack_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(pack_dir).as_posix()
        if rel != manifest.NAME:
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
    (pack_dir / manifest.NAME).write_text("".join(lines))


def rules(report, level=None):
    return {f.rule for f in report.findings if level is None or str(f.level) == level}


# ---------------------------------------------------------------------------- 1. rehearsals


@pytest.mark.parametrize("mode", ["fake", "ticket"])
def test_a_rehearsal_with_a_handmade_manifest_and_no_bookkeeping_is_never_certified(
        toy_pm, toy_tree, dst, piscript, mode):
    pack(toy_pm, toy_tree, dst, piscript, mode=mode, ous_uids=UIDS)
    handmade_manifest(dst)
    subprocess.run(["sha256sum", "-c", "--quiet", manifest.NAME], cwd=dst, check=True)
    for state in (True, False):
        if not state:
            import shutil

            shutil.rmtree(paths.state_dir(dst))
        report = verify(dst, for_ingestion=True, plugins=toy_pm)
        assert not report.ok
        fake = [f for f in report.findings if f.rule == "package.fake"]
        assert fake and "empty placeholder" in fake[0].message, report.findings
        with pytest.raises(Qa2Error, match="FAKE package"):
            make_tars(dst, plugins=toy_pm)
        assert not list(dst.parent.glob("*.tar*"))


def test_a_real_run_is_never_appended_to_a_rehearsal_with_a_handmade_manifest(
        toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="fake")
    handmade_manifest(dst)
    import shutil

    shutil.rmtree(paths.state_dir(dst))
    with pytest.raises(Qa2Error, match=r"holds a rehearsal.*\[append.mixed\]"):
        pack(toy_pm, toy_tree, dst, piscript, mode="copy", append="group")
    assert not (dst / "sg_ouss_id/group_ouss_2_id").exists()


# ---------------------------------------------------------------------------- 2. tar reads once


@pytest.mark.mutates_source
def test_tar_compares_the_bytes_it_writes_with_the_manifest(toy_pm, toy_tree, dst, piscript,
                                                            monkeypatch):
    """An edit between verify and the tar's read (a hard-linked script edited in place) never
    ships: the tar hashes what it writes, and publishes nothing on a mismatch."""
    pack(toy_pm, toy_tree, dst, piscript, mode="hard")
    script = dst / MEMBER / "script/run.py"
    from qa2core.checks import verify as verify_module

    real_verify = verify_module.verify

    def verify_then_edit(*args, **kwargs):
        report = real_verify(*args, **kwargs)
        text = script.read_bytes()
        st = script.stat()
        script.write_bytes(text.replace(b"reduce", b"REDUCE"))  # same size, mtime put back
        os.utime(script, ns=(st.st_atime_ns, st.st_mtime_ns))
        return report

    monkeypatch.setattr(verify_module, "verify", verify_then_edit)
    with pytest.raises(Qa2Error, match=r"run\.py: sha256 differs from the manifest.*no tar"):
        make_tars(dst, plugins=toy_pm)
    assert not list(dst.parent.glob("*.tar*"))


def test_tar_reads_each_byte_once(toy_pm, toy_tree, dst, piscript, monkeypatch):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    hashed = []
    real = fileops.hash_file
    monkeypatch.setattr(fileops, "hash_file", lambda p, follow=True: hashed.append(p) or real(p, follow))
    make_tars(dst, plugins=toy_pm)
    assert hashed == []  # no hashing pass before the tar: its own read is checked


# ---------------------------------------------------------------------------- 3. torn table reads


@pytest.mark.mutates_source
def test_a_table_file_rewritten_while_it_is_read_refuses_the_run(toy_pm, toy_tree, dst, piscript,
                                                                 monkeypatch):
    table = toy_tree / "img/target.mask"
    table.mkdir()
    (table / "table.dat").write_bytes(b"\x00" * 4096)
    (table / "table.f0").write_bytes(b"\x01" * 65536)
    real_addfile = tarfile.TarFile.addfile

    def rewrite_while_read(self, info, fileobj=None, *a, **k):
        if info.name.endswith("table.f0"):
            path = table / "table.f0"
            st = path.stat()
            with open(path, "r+b") as fh:  # in place, same size, mtime put back
                fh.write(b"\x02" * 65536)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return real_addfile(self, info, fileobj, *a, **k)

    monkeypatch.setattr(tarfile.TarFile, "addfile", rewrite_while_read)
    with pytest.raises(Qa2Error, match=r"table\.f0: source changed while packaging \(rewritten"):
        pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert not dst.exists()


@pytest.mark.mutates_source
def test_a_file_rewritten_while_it_is_copied_refuses_the_run(toy_pm, toy_tree, dst, piscript,
                                                             monkeypatch):
    real_read = os.read
    src = toy_tree / "img/target.pbcor.fits"
    src.write_bytes(b"SIMPLE  =                    T" + bytes(3 << 20))
    done = []

    def read_then_rewrite(fd, n):
        data = real_read(fd, n)
        if not done and os.path.realpath(f"/proc/self/fd/{fd}") == str(src.resolve()):
            done.append(1)
            st = src.stat()
            with open(src, "r+b") as fh:
                fh.seek(1 << 21)
                fh.write(b"X" * 10)
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        return data

    monkeypatch.setattr(fileops.os, "read", read_then_rewrite)
    with pytest.raises(Qa2Error, match=r"target\.pbcor\.fits: source changed while packaging"):
        pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert done and not dst.exists()


# ---------------------------------------------------------------------------- 4. bookkeeping links


@pytest.mark.parametrize("command", ["package", "tar"])
def test_a_symlinked_lock_is_never_written_through(toy_pm, toy_tree, dst, piscript, tmp_path,
                                                   command):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    lock = paths.lock_file(dst)
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    with pytest.raises(Qa2Error, match=r"lock: a symbolic link in qa2's bookkeeping.*\[state.link\]"):
        if command == "package":
            pack(toy_pm, toy_tree, dst, piscript, mode="copy")
        else:
            make_tars(dst, plugins=toy_pm)
    assert victim.read_text() == "keep me\n"


@pytest.mark.parametrize("name", ["journal.json", "partial", "."])
def test_any_link_in_the_bookkeeping_refuses_the_run_by_name(toy_pm, toy_tree, dst, piscript,
                                                             tmp_path, name):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "journal.json").write_text("{}")
    state = paths.state_dir(dst)
    if name == ".":
        import shutil

        shutil.rmtree(state)
        state.symlink_to(elsewhere)
        shown = state
    else:
        target = state / name
        if target.exists():
            target.unlink()
        target.symlink_to(elsewhere / "journal.json" if name == "journal.json" else elsewhere)
        shown = target
    before = sorted(p.name for p in elsewhere.iterdir())
    with pytest.raises(Qa2Error, match=rf"{shown}: a symbolic link.*\[state.link\]"):
        pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert sorted(p.name for p in elsewhere.iterdir()) == before


# ---------------------------------------------------------------------------- 5. re-runs repair


def test_a_rerun_repairs_a_same_size_corruption_with_the_mtime_put_back(toy_pm, toy_tree, dst,
                                                                         piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    target = dst / MEMBER / "product/target.image.pbcor.fits"
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF  # bit rot
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "manifest.checksum" in rules(verify(dst, plugins=toy_pm), "ERROR")
    report = pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    actions = {Path(f.dest).name: f.action for f in report.files}
    assert actions["target.image.pbcor.fits"] == "copy"
    assert actions["run.py"] == "reused"
    assert verify(dst, plugins=toy_pm).ok
    subprocess.run(["sha256sum", "-c", "--quiet", manifest.NAME], cwd=dst, check=True)


# ---------------------------------------------------------------------------- 6, 7. the tree


@pytest.mark.parametrize("extra", ["NOTES.txt", ".git/config", "junk/a", "junk/", "sg_ouss_id/x.txt",
                                   "sg_ouss_id/group_ouss_id/stray/", "sg_ouss_id/extra_group/"])
def test_anything_outside_the_ous_tree_fails_verify_and_tar_listed_or_not(
        toy_pm, toy_tree, dst, piscript, extra):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    path = dst / extra
    if extra.endswith("/"):
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not a delivery\n")
        with open(dst / manifest.NAME, "a") as fh:  # listed: still refused
            fh.write(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {extra}\n")
    report = verify(dst, plugins=toy_pm)
    # a directory where a member stands is a member with a wrong name; anything else is outside
    outside = [f for f in report.findings if f.rule in ("structure.outside", "structure.ous_name")]
    assert not report.ok and outside, report.findings
    assert extra.startswith(outside[0].path.rstrip("/"))
    with pytest.raises(Qa2Error, match="refused to archive"):
        make_tars(dst, plugins=toy_pm)


def test_a_file_listed_twice_fails_verify_naming_both_lines(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    lines = (dst / manifest.NAME).read_text().splitlines(keepends=True)
    right = next(line for line in lines if line.endswith("script/run.py\n"))
    wrong = "0" * 64 + right[64:]
    (dst / manifest.NAME).write_text(wrong + "".join(lines))  # wrong first, right later
    sums = subprocess.run(["sha256sum", "-c", "--quiet", manifest.NAME], cwd=dst,
                          capture_output=True)
    assert sums.returncode != 0
    report = verify(dst, plugins=toy_pm)
    line = [f for f in report.findings if f.rule == "manifest.line"]
    assert not report.ok and line and "listed again (first on line 1)" in line[0].message


# ---------------------------------------------------------------------------- 11. scriptForPI


@pytest.mark.parametrize("mode", ["fake", "copy"])
def test_random_bytes_as_piscript_are_refused_in_every_mode(toy_pm, toy_tree, dst, tmp_path, mode):
    bad = tmp_path / "pi" / "scriptForPI.py"
    bad.parent.mkdir()
    bad.write_bytes(os.urandom(5000))
    with pytest.raises(Qa2Error, match=r"scriptForPI\.py: --piscript is not a scriptForPI: "
                                       r".*\[script\.piscript_content\]"):
        pack(toy_pm, toy_tree, dst, bad, mode=mode)
    assert not dst.exists()


def test_a_scriptforpi_replaced_by_random_bytes_fails_verify(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    (dst / MEMBER / "script/scriptForPI.py").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(5000))
    handmade_manifest(dst)
    for ingestion in (False, True):
        report = verify(dst, for_ingestion=ingestion, plugins=toy_pm)
        assert "script.piscript_content" in rules(report, "ERROR")


def test_a_python2_master_copy_is_a_scriptforpi(toy_pm, toy_tree, dst, tmp_path):
    old = tmp_path / "pi" / "scriptForPI.py"
    old.parent.mkdir()
    old.write_text("# $Id: scriptForPI.py,v 1.9 2014/03/01 dpetry Exp $\nprint 'Python 2'\n")
    pack(toy_pm, toy_tree, dst, old, mode="copy")
    assert "script.piscript_content" not in rules(verify(dst, plugins=toy_pm))


# ---------------------------------------------------------------------------- 12. after the swap


def test_a_fault_after_the_swap_says_the_package_is_in_place_and_counts_as_done(
        toy_pm, toy_tree, dst, piscript, monkeypatch):
    real = fileops.fsync_dir
    calls = []

    def eio_once(path):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error", path)
        return real(path)

    monkeypatch.setattr(fileops, "fsync_dir", eio_once)
    said = []
    report = engine.package(toy_tree, dst, piscript=piscript, plugins=toy_pm, mode="copy",
                            progress=said.append)
    assert calls and any("the new package is in place" in n and "counts as done" in n
                         for n in report.notes)
    assert not any("nothing was kept" in line for line in said + list(report.notes))
    assert verify(dst, plugins=toy_pm).ok


def test_a_fault_that_leaves_the_bookkeeping_unfinished_says_how_to_finish(
        toy_pm, toy_tree, dst, piscript, monkeypatch):
    real_replace = os.replace

    def journal_fails(src, target):
        if str(target).endswith("journal.json"):
            raise OSError(errno.EIO, "Input/output error", str(target))
        return real_replace(src, target)

    monkeypatch.setattr(build.os, "replace", journal_fails)
    with pytest.raises(Qa2Error) as caught:
        pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    text = str(caught.value)
    assert "the new package is in place" in text and "run qa2 package again" in text
    assert "nothing was kept" not in text
    monkeypatch.undo()
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")  # the next run completes it
    assert verify(dst, plugins=toy_pm).ok


# ---------------------------------------------------------------------------- 13, 14


def test_two_runs_give_byte_identical_ticket_zips_whatever_the_clock(
        toy_pm, toy_tree, tmp_path, piscript, monkeypatch):
    zips = []
    real_time = zipfile.time.time
    for run, offset in (("a", 0), ("b", 86400 * 3)):
        monkeypatch.setattr(zipfile.time, "time", lambda o=offset: real_time() + o)
        out = tmp_path / run / "2015.1.00123.S"
        out.parent.mkdir()
        pack(toy_pm, toy_tree, out, piscript, mode="copy")
        zips.append(paths.ticket_zip(out).read_bytes())
    assert zips[0] == zips[1]


def test_everything_a_swap_publishes_is_on_disk_before_the_rename(toy_pm, toy_tree, dst, piscript,
                                                                  monkeypatch):
    events = []
    real_sync, real_rename, real_fsync_dir = (fileops.sync_filesystem, build.os.rename,
                                              fileops.fsync_dir)
    monkeypatch.setattr(fileops, "sync_filesystem",
                        lambda p: events.append(("sync", p)) or real_sync(p))
    monkeypatch.setattr(fileops, "fsync_dir", lambda p: events.append(("fsync_dir", p)) or
                        real_fsync_dir(p))
    monkeypatch.setattr(build.os, "rename", lambda a, b: events.append(("rename", str(b))) or
                        real_rename(a, b))
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")  # with a previous unit to move aside
    kinds = [k for k, _ in events]
    first_rename = kinds.index("rename")
    assert "sync" in kinds[:first_rename]
    assert ("fsync_dir", str(dst)) in events[first_rename:]
    journal = paths.journal_file(dst)
    assert journal.stat().st_size > 0 and (dst / manifest.NAME).stat().st_size > 0


def test_an_append_onto_a_package_damaged_by_hand_is_refused(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    (dst / MEMBER / "script/run.py").unlink()
    with pytest.raises(Qa2Error, match=r"lists 1 file\(s\) that are gone.*run\.py.*\[append.damaged\]"):
        pack(toy_pm, toy_tree, dst, piscript, mode="copy", append="group")
    assert not (dst / "sg_ouss_id/group_ouss_2_id").exists()


def test_a_group_removed_whole_leaves_the_manifest_with_it(toy_pm, toy_tree, dst, piscript):
    import shutil

    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    pack(toy_pm, toy_tree, dst, piscript, mode="copy", append="group")
    shutil.rmtree(dst / "sg_ouss_id/group_ouss_id")
    pack(toy_pm, toy_tree, dst, piscript, mode="copy", append="group")
    assert verify(dst, plugins=toy_pm).ok
    subprocess.run(["sha256sum", "-c", "--quiet", manifest.NAME], cwd=dst, check=True)


def test_the_empty_scriptforimaging_of_pipeline_imaged_data_is_no_placeholder(tmp_path):
    """JAO's pkgPipe ships an empty script/scriptForImaging.py with pipeline-imaged data: a
    real package keeps it, and only a rehearsal's placeholders are found (qa2core.checks.content)."""
    from qa2core.checks import content
    from qa2core.testing import write_tree

    member = write_tree(tmp_path / "m", {"script/scriptForImaging.py": b"",
                                         "script/scriptForPI.py": b"# $Id: scriptForPI.py,v 1 $\n"})
    assert content.placeholders(str(member)) == []
    (member / "script/scriptForPI.py").write_bytes(b"")
    assert content.placeholders(str(member)) == ["script/scriptForPI.py"]


def test_a_damaged_manifest_is_repaired_by_a_whole_rerun_and_refuses_an_append(
        toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    lines = (dst / manifest.NAME).read_text()
    (dst / manifest.NAME).write_text(lines + lines.splitlines(keepends=True)[0])  # listed twice
    with pytest.raises(Qa2Error, match=r"listed again.*cannot be carried over.*\[manifest\.line\]"):
        pack(toy_pm, toy_tree, dst, piscript, mode="copy", append="group")
    assert not (dst / "sg_ouss_id/group_ouss_2_id").exists()
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")  # replaces every unit: repaired
    assert verify(dst, plugins=toy_pm).ok
    subprocess.run(["sha256sum", "-c", "--quiet", manifest.NAME], cwd=dst, check=True)
