"""The core machinery with a throwaway plugin: modes, append, README, ticket, manifest, safety."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.errors import Qa2Error, ValidationFailed
from qa2core.testing import files_below, tree_state

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"


def toy_sources(toy_tree, piscript):
    """The five files the toy plugin and the core package (notes.txt and the marker are not)."""
    return (toy_tree / "scripts/run.py", piscript, toy_tree / "logs/casa-20160101-000000.log",
            toy_tree / "img/target.image.pbcor.fits", toy_tree / "img/target.pb.fits")


def pack(toy_pm, src, dst, **kw):
    kw.setdefault("plugins", toy_pm)
    return engine.package(src, dst, **kw)


@pytest.fixture
def dst(tmp_path):
    return tmp_path / "2015.1.00123.S"


@pytest.mark.parametrize("mode", ["fake", "ticket", "copy", "hard"])
def test_every_mode_builds_the_same_tree_and_leaves_the_source_alone(toy_pm, toy_tree, dst, header,
                                                                      piscript, mode):
    before = tree_state(toy_tree)
    report = pack(toy_pm, toy_tree, dst, readme_path=header, piscript=piscript, mode=mode)
    assert tree_state(toy_tree) == before
    member = dst / MEMBER
    assert files_below(member) == {
        "README", "script/run.py", "script/scriptForPI.py", "log/casa-20160101-000000.log",
        "product/target.image.pbcor.fits", "product/target.pb.fits.gz",
    }
    assert {p.name for p in member.iterdir() if p.is_dir()} == {
        "calibration", "log", "product", "qa", "script"}
    assert report.unclassified == ("notes.txt",)
    assert "    notes.txt" in report.left_out_lines()
    sizes = {p: (member / p).stat().st_size for p in files_below(member) if p != "README"}
    if mode in ("fake", "ticket"):
        assert set(sizes.values()) == {0}
    else:
        assert (member / "script/run.py").read_bytes() == (toy_tree / "scripts/run.py").read_bytes()
        assert gzip.decompress((member / "product/target.pb.fits.gz").read_bytes()) == \
            (toy_tree / "img/target.pb.fits").read_bytes()


def test_readme_is_the_header_byte_for_byte_then_the_final_listing(toy_pm, toy_tree, dst, header,
                                                                   piscript):
    pack(toy_pm, toy_tree, dst, readme_path=header, piscript=piscript, mode="copy")
    text = (dst / MEMBER / "README").read_bytes()
    assert text.startswith(header.read_bytes())
    listing = text[len(header.read_bytes()):].decode()
    assert "target.pb.fits.gz" in listing and "target.pb.fits\n" not in listing
    for name in ("calibration/", "qa/", "run.py", "scriptForPI.py", "README"):
        assert name in listing


def test_ticket_zip_holds_readme_scripts_and_the_size(toy_pm, toy_tree, dst, header, piscript):
    report = pack(toy_pm, toy_tree, dst, readme_path=header, piscript=piscript, mode="ticket")
    ticket = dst.with_name(dst.name + ".ticket.zip")
    with zipfile.ZipFile(ticket) as zf:
        names = set(zf.namelist())
        assert {"README", "script/run.py", "script/scriptForPI.py", "package_size.txt"} <= names
        assert zf.read("script/run.py") == (toy_tree / "scripts/run.py").read_bytes()
        readme = zf.read("README")
        statement = zf.read("package_size.txt").decode()
    assert readme == (dst / MEMBER / "README").read_bytes()
    assert readme.startswith(header.read_bytes()) and readme.endswith(b"`-- README\n")
    # Ticket mode states the sources' bytes (the PB image counted uncompressed: an upper
    # bound) plus the README's, measured here on the sources, not taken from the report.
    size = sum(os.path.getsize(p) for p in toy_sources(toy_tree, piscript)) + len(readme)
    assert (f"Expected size of the package: {size} bytes (0.00 GiB) in 6 files\n"
            "(sum of the source sizes;") in statement
    assert report.package_bytes == size


def test_fake_mode_ticket_is_an_empty_dummy(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="fake")
    assert dst.with_name(dst.name + ".ticket.zip").stat().st_size == 0
    assert not (dst / "manifest-sha256.txt").exists()


@pytest.mark.parametrize("mode", ["copy", "hard"])
def test_manifest_passes_sha256sum(toy_pm, toy_tree, dst, piscript, mode):
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode=mode)
    lines = (dst / "manifest-sha256.txt").read_text().splitlines()
    assert len(lines) == len(files_below(dst / MEMBER))
    run = subprocess.run(["sha256sum", "-c", "--strict", "manifest-sha256.txt"], cwd=dst,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hard_mode_links_immutable_files_and_copies_tables(toy_pm, tmp_path, dst, piscript):
    from qa2core.testing import write_tree

    src = write_tree(tmp_path / "red", {
        "toy.marker": "", "a.fits": b"x" * 4000, "cal.ms.split.cal/table.dat": b"T" * 100,
        "cal.ms.split.cal/table.info": "Type = Measurement Set\nSubType = \n",
        "cal.ms.split.cal/table.f0": b"d" * 500,
    })
    report = pack(toy_pm, src, dst, piscript=piscript, mode="hard", style="cycle0-nopipe")
    member = dst / MEMBER
    assert os.stat(member / "product/a.fits").st_ino == os.stat(src / "a.fits").st_ino
    table_copy = member / "calibrated/cal.ms.split.cal/table.f0"
    assert table_copy.read_bytes() == b"d" * 500
    assert os.stat(table_copy).st_ino != os.stat(src / "cal.ms.split.cal/table.f0").st_ino
    assert sum("copied, not hard-linked" in w for w in report.warnings) == 1
    actions = {Path(f.dest).name: f.action for f in report.files}
    assert actions["a.fits"] == "link" and actions["cal.ms.split.cal"] == "copy"


def test_link_refused_by_the_file_system_falls_back_to_copy_with_one_warning(
        toy_pm, toy_tree, dst, piscript, monkeypatch):
    import errno

    def refuse(src, dst, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))

    monkeypatch.setattr(os, "link", refuse)
    report = pack(toy_pm, toy_tree, dst, piscript=piscript, mode="hard")
    assert sum("hard links refused" in w for w in report.warnings) == 1
    assert (dst / MEMBER / "script/run.py").read_bytes() == (toy_tree / "scripts/run.py").read_bytes()
    assert {f.action for f in report.files if f.dest.endswith("run.py")} == {"copy"}


def test_append_group_then_member_never_touches_existing_members(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    first = tree_state(dst / "sg_ouss_id/group_ouss_id")
    r2 = pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy", append="group")
    r3 = pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy", append="member")
    assert r2.member == "sg_ouss_id/group_ouss_2_id/member_ouss_id"
    assert r3.member == "sg_ouss_id/group_ouss_2_id/member_ouss_2_id"
    assert tree_state(dst / "sg_ouss_id/group_ouss_id") == first
    manifest = (dst / "manifest-sha256.txt").read_text()
    for member in (MEMBER, r2.member, r3.member):
        assert f"  {member}/script/run.py\n" in manifest
    subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=dst, check=True)


def test_append_none_replaces_only_sg_ouss_id(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy", append="group")
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy", append="group")
    (dst / "notes-of-the-reducer.txt").write_text("keep me")
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    assert sorted(p.name for p in (dst / "sg_ouss_id").iterdir()) == ["group_ouss_id"]
    assert (dst / "notes-of-the-reducer.txt").read_text() == "keep me"


def test_append_member_without_a_package_is_refused(toy_pm, toy_tree, dst, piscript):
    with pytest.raises(Qa2Error, match="--append member needs an existing package"):
        pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy", append="member")
    assert not dst.exists()


@pytest.mark.mutates_source
def test_validation_error_refuses_and_writes_nothing(toy_pm, toy_tree, dst, piscript):
    (toy_tree / "forbidden.py").write_text("x")
    with pytest.raises(ValidationFailed) as err:
        pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    assert any("script/forbidden.py" in line for line in err.value.lines)
    assert not dst.exists() and not dst.with_name(dst.name + ".ticket.zip").exists()


@pytest.mark.mutates_source
def test_failure_mid_copy_keeps_the_previous_package(toy_pm, toy_tree, dst, piscript, monkeypatch):
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    before = tree_state(dst)
    from qa2core.writing import fileops

    real_copy = fileops.copy_file

    def unreadable(src, target, *a, **kw):
        if os.path.basename(src) == "run.py":
            raise PermissionError(13, "Permission denied", str(src))
        return real_copy(src, target, *a, **kw)

    monkeypatch.setattr(fileops, "copy_file", unreadable)
    os.utime(toy_tree / "scripts/run.py")  # changed since the last run: it must be read again
    with pytest.raises(Qa2Error, match=r"run\.py: not readable"):
        pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    assert tree_state(dst) == before


def test_dry_run_writes_nothing(toy_pm, toy_tree, dst, piscript):
    report = pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy", dry_run=True)
    assert not dst.exists()
    assert {f.action for f in report.files} >= {"copy", "gzip"}
    pb = next(f for f in report.files if f.dest.endswith(".pb.fits.gz"))
    assert pb.bytes == (toy_tree / "img/target.pb.fits").stat().st_size


def test_a_second_run_refuses_while_the_lock_is_held(toy_pm, toy_tree, dst, piscript):
    from qa2core.planning import paths

    paths.state_dir(dst).mkdir()
    holder = subprocess.Popen(  # a real process holding the flock, as a running qa2 would
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
         "f.write('package pid 1@elsewhere'); f.flush(); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(60)", str(paths.lock_file(dst))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Qa2Error, match=r"another qa2 run holds the lock \(package pid 1@"):
            pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
        assert not dst.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_file_left_by_a_dead_process_does_not_block(toy_pm, toy_tree, dst, piscript):
    from qa2core.planning import paths

    paths.state_dir(dst).mkdir()
    paths.lock_file(dst).write_text("package pid 99999@this-host\n")  # its holder was killed
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    assert (dst / MEMBER / "README").exists() and paths.lock_file(dst).read_text() == ""


def test_gzip_output_is_standard_and_bit_exact(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    out = subprocess.run(["gunzip", "-c", str(dst / MEMBER / "product/target.pb.fits.gz")],
                         capture_output=True, check=True).stdout
    src = (toy_tree / "img/target.pb.fits").read_bytes()
    assert hashlib.sha256(out).digest() == hashlib.sha256(src).digest()


def test_rerun_over_an_unchanged_source_reuses_without_reading(toy_pm, toy_tree, dst, piscript,
                                                                monkeypatch):
    first = pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    manifest = (dst / "manifest-sha256.txt").read_text()
    from qa2core.writing import fileops

    def must_not_run(*args):
        raise AssertionError("re-read an unchanged file")

    hash_file, hashed = fileops.hash_file, []

    def hash_packaged_only(path, follow=True):  # a reused file's bytes are checked, no source
        assert Path(path).is_relative_to(dst), f"re-read the source {path}"
        hashed.append(path)
        return hash_file(path, follow)

    for name in ("copy_file", "gzip_file", "tgz"):
        monkeypatch.setattr(fileops, name, must_not_run)
    monkeypatch.setattr(fileops, "hash_file", hash_packaged_only)
    second = pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    assert len(hashed) == len(first.files) - 1  # every reused file, not the README
    assert {f.action for f in second.files} == {"reused", "readme"}
    assert (dst / "manifest-sha256.txt").read_text() == manifest
    assert len(first.files) == len(second.files)


@pytest.mark.mutates_source
def test_rerun_redoes_what_changed(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    (toy_tree / "scripts/run.py").write_text("print('reduce better')\n")
    report = pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    actions = {Path(f.dest).name: f.action for f in report.files}
    assert actions["run.py"] == "copy" and actions["target.pb.fits.gz"] == "reused"
    assert (dst / MEMBER / "script/run.py").read_text() == "print('reduce better')\n"
    subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=dst, check=True)


@pytest.mark.mutates_source
def test_source_changed_during_the_copy_refuses_the_run(toy_pm, toy_tree, dst, piscript,
                                                         monkeypatch):
    from qa2core.writing import fileops

    real_copy = fileops.copy_file

    def copy_then_edit(src, target, *a, **kw):
        sha = real_copy(src, target, *a, **kw)
        if os.path.basename(src) == "run.py":
            with open(src, "a") as fh:
                fh.write("# the reducer is still editing\n")
        return sha

    monkeypatch.setattr(fileops, "copy_file", copy_then_edit)
    with pytest.raises(Qa2Error, match=r"run\.py: source changed while packaging"):
        pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    assert not dst.exists()


def test_ticket_keeps_scripts_and_caps_the_qa_plots(tmp_path, monkeypatch):
    from qa2core.hooks.model import Action
    from qa2core.planning.plan import Plan, PlannedFile
    from qa2core.writing import ticket

    monkeypatch.setattr(ticket, "MAX_QA_FILES", 3)
    files = [PlannedFile(f"qa/p{i}.png", Action.COPY, (tmp_path / f"p{i}.png",), (), 10, "t")
             for i in range(5)]
    files.append(PlannedFile("script/run.py", Action.COPY, (tmp_path / "run.py",), (), 5, "t"))
    files.append(PlannedFile("qa/weblog.tgz", Action.COPY, (tmp_path / "w.tgz",), (), 5, "t"))
    for f in files:
        f.sources[0].write_bytes(b"x" * f.bytes)
    out = tmp_path / "t.zip"
    ticket.write(out, b"README", Plan(tuple(files)), "size\n")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert "script/run.py" in names and "qa/weblog.tgz" not in names
        assert sum(n.startswith("qa/") for n in names) == 3
        assert "2 QA report file(s) are in the package but not in this ticket" in \
            zf.read("package_size.txt").decode()


def test_pbcor_images_need_a_primary_beam_beside_them():
    import re

    from qa2core.hooks.model import PackageView
    from qa2core.planning.rules import missing_pb_partners
    from qa2core.planning.styles import resolve_style

    def pb_warnings(*products, exempt=None):
        view = PackageView(tuple(f"product/{p}" for p in products), resolve_style(""), "x")
        return [f.path.removeprefix("product/") for f in missing_pb_partners(view, exempt)]

    mtmfs = ("o.NGC_628_sci.spw17.cont.I.tt0.pbcor.fits", "o.NGC_628_sci.spw17.cont.I.tt1.pbcor.fits",
             "o.NGC_628_sci.spw17.cont.I.pb.tt0.fits")
    assert pb_warnings(*mtmfs) == []
    assert pb_warnings("cont.image.pbcor.fits", "cont.flux.fits.gz") == []
    assert pb_warnings("lonely.image.pbcor.fits") == ["lonely.image.pbcor.fits"]
    calibrator = "o.J0139+1753_ph.spw19.mfs.I.pbcor.fits"
    assert pb_warnings(calibrator) == [calibrator]
    assert pb_warnings(calibrator, exempt=re.compile(r"_ph\.spw")) == []


@pytest.mark.mutates_source
@pytest.mark.parametrize("fail_at", ["rename", "replace"])
def test_an_interrupted_swap_is_undone_or_completed(toy_pm, toy_tree, dst, piscript, monkeypatch,
                                                   fail_at):
    """Ctrl-C between the steps of the swap: before the new unit is in place, the previous
    package comes back; after it, the prepared manifest and ticket are put in place."""
    from qa2core.writing import build

    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    before = tree_state(dst)
    (toy_tree / "scripts/run.py").write_text("print('v2')\n")
    real = getattr(os, fail_at)
    calls = []

    def interrupted(src, target):
        name = Path(target).name
        calls.append(name)
        if fail_at == "rename" and name == "sg_ouss_id" and calls.count(name) == 1:
            raise KeyboardInterrupt  # old unit moved aside, new one not yet in
        if fail_at == "replace" and name == "manifest-sha256.txt" and calls.count(name) == 1:
            raise KeyboardInterrupt  # new unit in, manifest not yet
        return real(src, target)

    monkeypatch.setattr(build.os, fail_at, interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy")
    monkeypatch.undo()
    from qa2core.planning import paths

    assert not paths.partial_dir(dst).exists()  # recovered under the lock, nothing left over
    if fail_at == "rename":
        assert tree_state(dst) == before
    else:
        assert (dst / MEMBER / "script/run.py").read_text() == "print('v2')\n"
    subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=dst, check=True)


def test_the_meter_sees_every_source_byte_once(toy_pm, toy_tree, dst, piscript):
    class Recorder:
        def __init__(self):
            self.calls = []

        def start(self, total_bytes, entries):
            self.calls.append(("start", total_bytes, entries))

        def advance(self, source_bytes):
            self.calls.append(("advance", source_bytes))

        def stop(self):
            self.calls.append(("stop",))

    meter = Recorder()
    pack(toy_pm, toy_tree, dst, piscript=piscript, mode="copy", meter=meter)
    start, *advances, stop = meter.calls
    assert start[0] == "start" and stop == ("stop",)
    # The bytes of the five packaged sources, as they lie on disk (the PB image uncompressed).
    source_bytes = sum(os.path.getsize(p) for p in toy_sources(toy_tree, piscript))
    assert start[1] == source_bytes and sum(a[1] for a in advances) == source_bytes
    assert start[2] == 5  # every entry but the README


def test_a_big_copy_is_written_back_as_it_goes_and_stays_exact(tmp_path, monkeypatch):
    """Past WRITEBACK bytes the copy asks the kernel to start writing its output out
    (qa2core.writing.fileops): the bytes and their digest are still the source's, and a file
    system that refuses the hint loses nothing."""
    import errno

    from qa2core.writing import fileops

    src = tmp_path / "cube.fits"
    block = os.urandom(1 << 20)
    with open(src, "wb") as fh:
        for i in range(fileops.WRITEBACK // len(block) * 2 + 3):
            fh.write(block[i:] + block[:i])
    hints = []
    real = os.posix_fadvise

    def advise(fd, offset, length, advice):
        hints.append((offset, length, advice))
        if len(hints) == 2:
            raise OSError(errno.EINVAL, "refused")
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", advise)
    done = fileops.copy_file(str(src), str(tmp_path / "out.fits"))
    data = src.read_bytes()
    assert (tmp_path / "out.fits").read_bytes() == data
    assert done.sha256 == hashlib.sha256(data).hexdigest() and done.size == len(data)
    assert [(o, n) for o, n, _ in hints] == [(0, fileops.WRITEBACK), (fileops.WRITEBACK, fileops.WRITEBACK)]
