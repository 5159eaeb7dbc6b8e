"""Promises no other test pinned down, each checked against values known independently of the
code under test (bytes written literally here, sizes measured with os.walk, GNU tar and
sha256sum doing the reading)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from qa2core import GENERIC, Claim, Finding, Level, engine, hookimpl
from qa2core.checks.verify import verify
from qa2core.errors import Qa2Error
from qa2core.planning import paths
from qa2core.testing import tree_state
from qa2core.writing import fileops, journal
from qa2core.writing.archive import make_tars

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
MANIFEST = "manifest-sha256.txt"
SG = "science_goal.uid___A001_X87c_X67"
UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
SAME_SOUS = "uid://A001/X87c/X67,uid://A001/X87c/X70,uid://A001/X87c/X71"
SAME_GOUS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X72"


def pack(pm, src, dst, piscript, **kw):
    return engine.package(src, dst, piscript=piscript, plugins=pm, **kw)


@pytest.fixture
def dst(tmp_path):
    return tmp_path / "out" / "2015.1.00123.S"


@pytest.fixture(autouse=True)
def _out(tmp_path):
    (tmp_path / "out").mkdir()


def ticket_of(pack_dir: Path) -> Path:
    return pack_dir.with_name(pack_dir.name + ".ticket.zip")


def whole_state(pack_dir: Path) -> dict:
    """PACKPATH, its ticket and its journal, as bytes and times (the lock file aside: its
    time says only that a run looked)."""
    state = {f"pack/{k}": v for k, v in tree_state(pack_dir).items()}
    state |= {f"state/{k}": v for k, v in tree_state(paths.state_dir(pack_dir)).items()
              if k != "lock"}
    zip_path = ticket_of(pack_dir)
    state["ticket"] = zip_path.read_bytes() if zip_path.exists() else None
    return state


def sha256sum_ok(where: Path) -> None:
    run = subprocess.run(["sha256sum", "-c", "--strict", MANIFEST], cwd=where,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


# ---------------------------------------------------------------- 1. --append group, real names


def test_append_group_with_real_names_keeps_the_existing_group_byte_for_byte(
        toy_pm, toy_tree, dst, piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy", ous_uids=UIDS, readme_path=header)
    old_group = dst / SG / "group.uid___A001_X87c_X68"
    assert (old_group / "member.uid___A001_X87c_X69/README").is_file()
    before = tree_state(dst / SG)

    report = pack(toy_pm, toy_tree, dst, piscript, mode="copy", append="group",
                  ous_uids=SAME_SOUS, readme_path=header)

    assert report.member == f"{SG}/group.uid___A001_X87c_X70/member.uid___A001_X87c_X71"
    after = tree_state(dst / SG)
    assert {k: after.get(k) for k in before} == before  # every old entry, byte for byte
    assert sorted(p.name for p in (dst / SG).iterdir()) == [
        "group.uid___A001_X87c_X68", "group.uid___A001_X87c_X70"]
    new_member = dst / report.member
    assert (new_member / "script/run.py").read_bytes() == (toy_tree / "scripts/run.py").read_bytes()
    listed = (dst / MANIFEST).read_text()
    for member in (f"{SG}/group.uid___A001_X87c_X68/member.uid___A001_X87c_X69", report.member):
        assert f"  {member}/script/run.py\n" in listed and f"  {member}/README\n" in listed
    sha256sum_ok(dst)
    checked = verify(dst, level="complete", for_ingestion=True, plugins=toy_pm)
    assert checked.ok, checked.findings
    assert len(checked.members) == 2


def test_append_group_naming_an_existing_group_is_refused_untouched(toy_pm, toy_tree, dst,
                                                                    piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy", ous_uids=UIDS)
    before = whole_state(dst)
    with pytest.raises(Qa2Error, match=r"group\.uid___A001_X87c_X68: exists; --append group "
                                       r"never overwrites"):
        pack(toy_pm, toy_tree, dst, piscript, mode="copy", append="group", ous_uids=SAME_GOUS)
    assert whole_state(dst) == before
    assert not paths.partial_dir(dst).exists()


# ---------------------------------------------------------------- 2. verify on a tied claim


class Twin:
    """Claims any package holding a script/run.py, with the same score as its twin."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def qa2_detect(self, delivery):
        if "run.py" in delivery.names():
            return Claim(GENERIC, f"{self.name}: a run.py", ("run.py",))
        return None

    @hookimpl
    def qa2_validate(self, view):
        return [Finding(Level.WARN, f"{self.name}.ran", "", "twin rules ran")]


def test_verify_of_a_package_two_plugins_claim_equally_says_so_and_runs_the_core_rules(
        toy_pm, toy_tree, dst, piscript, run_qa2, qa2_pm, monkeypatch):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    (dst / MEMBER / "README").unlink()
    from qa2core.planning import paths

    paths.journal_file(dst).unlink()  # no record of who made it (an untarred package): detect
    qa2_pm.register(Twin("twin_a"), name="twin_a")
    qa2_pm.register(Twin("twin_b"), name="twin_b")
    monkeypatch.setattr("qa2core.cli._plugins", lambda: qa2_pm)

    r = run_qa2("verify", dst, "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 1 and out["ok"] is False
    found = {(f["level"], f["rule"]) for f in out["findings"]}
    assert ("WARN", "structure.plugin") in found  # the tie is said, not settled silently
    assert ("ERROR", "structure.readme") in found  # the core's rules still ran
    assert not any(rule.endswith(".ran") for _level, rule in found)  # no twin picked
    assert out["plugin"] is None
    readme = [f for f in out["findings"] if f["rule"] == "structure.readme"]
    assert readme[0]["path"] == f"{MEMBER}/README"


# ---------------------------------------------------------------- 4. the journal and edited files


def _edit_packaged(dst: Path, rel: str, data: bytes, mtime_ns: int | None) -> None:
    path = dst / MEMBER / rel
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.mark.parametrize("how", ["same size, new time", "new size, same time"])
def test_an_edited_packaged_file_is_not_reused(toy_pm, toy_tree, dst, piscript, how):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    source = (toy_tree / "scripts/run.py").read_bytes()
    entry = journal.load(dst).entries[f"{MEMBER}/script/run.py"]
    assert entry.size == len(source)
    if how == "same size, new time":
        edited = source.upper()
        assert len(edited) == len(source) and edited != source
        _edit_packaged(dst, "script/run.py", edited, entry.mtime_ns + 2_000_000_000)
    else:
        _edit_packaged(dst, "script/run.py", source + b"# edited\n", entry.mtime_ns)
    assert not verify(dst, plugins=toy_pm).ok  # the manifest sees it

    report = pack(toy_pm, toy_tree, dst, piscript, mode="copy")

    assert (dst / MEMBER / "script/run.py").read_bytes() == source
    assert {f.action for f in report.files if f.dest == "script/run.py"} == {"copy"}
    checked = verify(dst, plugins=toy_pm)
    assert checked.ok, checked.findings
    sha256sum_ok(dst)


def test_an_edit_with_size_and_time_restored_is_caught_by_the_manifest(toy_pm, toy_tree, dst,
                                                                       piscript):
    """Size and mtime cannot see this edit (journal.still_valid): the manifest hash does."""
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    source = (toy_tree / "scripts/run.py").read_bytes()
    entry = journal.load(dst).entries[f"{MEMBER}/script/run.py"]
    _edit_packaged(dst, "script/run.py", source.upper(), entry.mtime_ns)

    def checksum_errors():
        return {f.path for f in verify(dst, plugins=toy_pm).findings
                if f.level is Level.ERROR and f.rule == "manifest.checksum"}

    assert checksum_errors() == {f"{MEMBER}/script/run.py"}
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    # Re-copied, or reused and still flagged: never a package that passes with wrong content.
    if (dst / MEMBER / "script/run.py").read_bytes() == source:
        assert checksum_errors() == set()
    else:
        assert checksum_errors() == {f"{MEMBER}/script/run.py"}


# ---------------------------------------------------------------- 5. same-size edit during the copy


@pytest.mark.mutates_source
def test_a_same_size_edit_of_a_source_during_the_copy_refuses_the_run(toy_pm, toy_tree, dst,
                                                                      piscript, monkeypatch):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    before = whole_state(dst)
    src = toy_tree / "scripts/run.py"
    first = src.stat().st_mtime_ns
    os.utime(src, ns=(first + 1_000_000_000,) * 2)  # changed since: the run must read it again
    real_copy = fileops.copy_file

    def copy_then_rewrite(source, target, *a, **kw):
        done = real_copy(source, target, *a, **kw)
        if os.path.basename(source) == "run.py":
            data = Path(source).read_bytes()
            Path(source).write_bytes(data.upper())  # same size, other bytes
            assert len(data.upper()) == len(data) and data.upper() != data
            os.utime(source, ns=(first + 5_000_000_000,) * 2)
        return done

    monkeypatch.setattr(fileops, "copy_file", copy_then_rewrite)
    with pytest.raises(Qa2Error, match=r"run\.py: source changed while packaging"):
        pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert whole_state(dst) == before
    assert not paths.partial_dir(dst).exists()


# ---------------------------------------------------------------- 6. multi-volume tars


def test_the_manifest_is_in_the_last_volume_and_the_volumes_untar_into_a_verified_package(
        toy_pm, toy_tree, dst, piscript, tmp_path, run_qa2, monkeypatch):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    on_disk = {p.relative_to(dst.parent).as_posix(): p.stat().st_size
               for p in dst.rglob("*") if p.is_file()}
    # README + log | the 2880-byte FITS alone | the rest: three volumes of at most 3000 bytes.
    assert on_disk[f"{dst.name}/{MEMBER}/product/target.image.pbcor.fits"] == 2880
    monkeypatch.setattr("qa2core.cli._plugins", lambda: toy_pm)
    r = run_qa2("tar", dst, "--max-size", repr(3000 / 2**30), "--json")  # 3000 bytes, exactly
    assert r.exit_code == 0, r.stderr
    tars = json.loads(r.stdout)["tars"]
    assert [Path(t).name for t in tars] == [
        f"2015.1.00123.S_{i:03d}_of_003.tar" for i in (1, 2, 3)]

    count: dict[str, int] = {}
    for number, path in enumerate(tars, 1):
        with tarfile.open(path) as tar:
            names = [m.name for m in tar.getmembers() if m.isfile()]
            assert (f"{dst.name}/{MANIFEST}" in names) is (number == 3)
            if number == 3:
                assert tar.extractfile(f"{dst.name}/{MANIFEST}").read() == \
                    (dst / MANIFEST).read_bytes()
            for name in names:
                count[name] = count.get(name, 0) + 1
    assert count == {name: 1 for name in on_disk}  # every file (manifest included) once

    out = tmp_path / "untar"
    out.mkdir()
    for path in tars:
        subprocess.run(["tar", "-xf", path, "-C", out], check=True, capture_output=True)
    untarred = out / dst.name
    sha256sum_ok(untarred)
    assert not paths.state_dir(untarred).exists()  # no journal came with the tars

    r = run_qa2("verify", untarred, "--json")
    result = json.loads(r.stdout)
    assert r.exit_code == 0 and result["ok"] is True, result
    assert not any(f["rule"] in ("package.fake", "manifest.absent") for f in result["findings"])


# ---------------------------------------------------------------- 7. a fake re-run over a real package


def test_a_fake_rerun_over_a_copy_leaves_no_stale_manifest(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert (dst / MANIFEST).is_file()
    pack(toy_pm, toy_tree, dst, piscript, mode="fake")  # append none: the unit is replaced

    assert (dst / MEMBER / "script/run.py").stat().st_size == 0
    assert not (dst / MANIFEST).exists()  # it would describe files that are not there
    report = verify(dst, plugins=toy_pm)
    assert any(f.rule == "package.fake" for f in report.findings)
    ingest = verify(dst, for_ingestion=True, plugins=toy_pm)
    assert not ingest.ok
    assert any(f.rule == "package.fake" and f.level is Level.ERROR for f in ingest.findings)
    with pytest.raises(Qa2Error, match="FAKE"):
        make_tars(dst, plugins=toy_pm)


# ---------------------------------------------------------------- 8. the lock


def test_a_lock_file_naming_another_host_that_nobody_holds_does_not_block(toy_pm, toy_tree, dst,
                                                                          piscript):
    paths.state_dir(dst).mkdir()
    paths.lock_file(dst).write_text("package pid 4242@another-host.example.org\n")
    report = pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert (dst / report.member / "README").is_file()
    assert paths.lock_file(dst).read_text() == ""


def test_a_lock_held_by_a_live_process_blocks_package_and_tar(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    before = whole_state(dst)
    holder = subprocess.Popen(  # another host's qa2 on NFS, as the kernel shows it: a flock
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); f.write('package pid 7@another-host'); f.flush(); "
         "print('held', flush=True); time.sleep(60)", str(paths.lock_file(dst))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Qa2Error, match=r"holds the lock \(package pid 7@another-host\)"):
            pack(toy_pm, toy_tree, dst, piscript, mode="copy")
        with pytest.raises(Qa2Error, match="holds the lock"):
            make_tars(dst, plugins=toy_pm)
    finally:
        holder.kill()
        holder.wait()
    assert whole_state(dst) == before
    assert not list(dst.parent.glob("*.tar"))


# ---------------------------------------------------------------- 9. README bytes, ticket size

LISTING = (
    b"\n#####\n"
    b"Contents of this member directory as packaged by qa2 (raw/ is added by the ASDM "
    b"tarballs):\n"
    b"\n"
    b"member_ouss_id/\n"
    b"|-- calibration/\n"
    b"|-- log/\n"
    b"|   `-- casa-20160101-000000.log\n"
    b"|-- product/\n"
    b"|   |-- target.image.pbcor.fits\n"
    b"|   `-- target.pb.fits.gz\n"
    b"|-- qa/\n"
    b"|-- script/\n"
    b"|   |-- run.py\n"
    b"|   `-- scriptForPI.py\n"
    b"`-- README\n"
)


def test_readme_is_the_header_bytes_then_the_separator_and_the_listing(toy_pm, toy_tree, dst,
                                                                       header, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy", readme_path=header)
    assert header.read_bytes().endswith(b"\n")
    assert (dst / MEMBER / "README").read_bytes() == header.read_bytes() + LISTING


def test_a_header_without_a_final_newline_gets_one(toy_pm, toy_tree, dst, tmp_path, piscript):
    header = tmp_path / "h.txt"
    header.write_bytes(b"Project code: 2015.1.00123.S\r\nno newline at the end")
    pack(toy_pm, toy_tree, dst, piscript, mode="ticket", readme_path=header)
    want = header.read_bytes() + b"\n" + LISTING
    assert (dst / MEMBER / "README").read_bytes() == want
    with zipfile.ZipFile(ticket_of(dst)) as zf:
        assert zf.read("README") == want


def test_the_ticket_states_the_bytes_on_disk_in_copy_mode(toy_pm, toy_tree, dst, header, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy", readme_path=header)
    size = nfiles = 0
    for dirpath, _dirs, files in os.walk(dst / MEMBER):
        for name in files:
            size += os.lstat(os.path.join(dirpath, name)).st_size
            nfiles += 1
    assert nfiles == 6
    with zipfile.ZipFile(ticket_of(dst)) as zf:
        statement = zf.read("package_size.txt").decode()
    assert statement == (f"Project: 2015.1.00123.S\nMember: {MEMBER}\n"
                         f"Expected size of the package: {size} bytes (0.00 GiB) in 6 files\n"
                         "(measured on the written package)\n")
