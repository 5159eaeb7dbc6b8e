"""``qa2 tar`` as a user sees it, pinned where `make mutate` found it unpinned (docs/reliability.md,
"Mutation testing"): tar names, volumes, the refusal lines, what each tar holds, its mode and
its sums."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from qa2core import engine, hookimpl
from qa2core.errors import Qa2Error, UsageError
from qa2core.planning import paths
from qa2core.writing.archive import _arcname, make_tars

UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
REAL = "science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/member.uid___A001_X87c_X69"
MOUS = "uid___A001_X87c_X69"


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "2015.1.00123.S"


def pack(pm, src, dst, piscript, header, **kw):
    return engine.package(src, dst, piscript=piscript, plugins=pm, mode="copy",
                          readme_path=header, **kw)


def files_of(dst: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(dst)), p.stat().st_size) for p in dst.rglob("*")
                  if p.is_file() and p.name != "manifest-sha256.txt")


def test_a_real_names_package_is_tarred_under_its_mous_with_no_warning(toy_pm, toy_tree, dst,
                                                                       piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS)
    report = make_tars(dst, plugins=toy_pm)  # no --ous-uids: the names are in the package
    name = f"2015.1.00123.S_{MOUS}_001_of_001.tar"
    assert report.tars == [str(dst.parent / name)]
    assert report.warnings == []
    for suffix, algo, sums in ((".sha256", hashlib.sha256, report.sha256),
                               (".md5sum", hashlib.md5, report.md5)):
        digest = algo((dst.parent / name).read_bytes()).hexdigest()
        assert (dst.parent / (name + suffix)).read_text() == f"{digest}  {name}\n"
        assert sums == {name: digest}
    umask = os.umask(0o022)
    os.umask(umask)
    assert (dst.parent / name).stat().st_mode & 0o7777 == 0o666 & ~umask
    assert (dst.parent / name).read_bytes()[257:265] == b"ustar  \0"  # GNU format, as GNU tar


def test_placeholder_names_warn_in_full_and_the_tar_holds_every_directory(toy_pm, toy_tree, dst,
                                                                          piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, header)
    report = make_tars(dst, plugins=toy_pm)
    assert report.warnings == ["placeholder OUS names in the tar: JAO ingestion refuses them; "
                               "give --ous-uids SOUS,GOUS,MOUS"]
    assert report.tars == [str(dst.parent / "2015.1.00123.S_001_of_001.tar")]
    with tarfile.open(report.tars[0]) as tar:
        dirs = {m.name for m in tar.getmembers() if m.isdir()}
    assert {"2015.1.00123.S/sg_ouss_id", "2015.1.00123.S/sg_ouss_id/group_ouss_id",
            "2015.1.00123.S/sg_ouss_id/group_ouss_id/member_ouss_id"} <= dirs


def test_ous_uids_for_a_many_member_package_is_refused_in_full(toy_pm, toy_tree, dst, piscript,
                                                               header):
    pack(toy_pm, toy_tree, dst, piscript, header)
    pack(toy_pm, toy_tree, dst, piscript, header, append="member")
    with pytest.raises(Qa2Error) as exc:
        make_tars(dst, ous_uids=UIDS, plugins=toy_pm)
    assert str(exc.value) == ("--ous-uids names one MOUS, but the package has 2 members; "
                              "tar a one-member package")


def test_a_missing_packpath_is_named(tmp_path):
    with pytest.raises(UsageError) as exc:
        make_tars(tmp_path / "nowhere")
    assert str(exc.value) == f"{tmp_path / 'nowhere'}: PACKPATH does not exist"


@pytest.mark.parametrize("suffix", ["", ".sha256", ".md5sum"])
def test_an_existing_tar_or_sum_is_never_overwritten(toy_pm, toy_tree, dst, piscript, header,
                                                     suffix):
    pack(toy_pm, toy_tree, dst, piscript, header)
    there = dst.parent / ("2015.1.00123.S_001_of_001.tar" + suffix)
    there.write_text("mine\n")
    with pytest.raises(Qa2Error) as exc:
        make_tars(dst, plugins=toy_pm)
    assert str(exc.value) == f"{there}: exists; remove it or choose --out"
    assert there.read_text() == "mine\n"
    assert sorted(p.name for p in dst.parent.iterdir()) == sorted(
        ["2015.1.00123.S", "2015.1.00123.S.qa2", "2015.1.00123.S.ticket.zip", there.name])


def _volumes(report) -> list[list[str]]:
    out = []
    for t in report.tars:
        with tarfile.open(t) as tar:
            out.append([m.name for m in tar.getmembers()])
    return out


def test_volumes_split_at_max_bytes_exactly(toy_pm, toy_tree, dst, piscript, header):
    """A volume holds files up to max_bytes inclusive; the directories go in the first volume
    only, the manifest in the last only."""
    pack(toy_pm, toy_tree, dst, piscript, header)
    sizes = [s for _, s in files_of(dst)]
    report = make_tars(dst, plugins=toy_pm, out_dir=dst.parent, max_bytes=sum(sizes))
    assert len(report.tars) == 1  # all files fit exactly: one volume
    for t in report.tars:
        Path(t).unlink()
        for suffix in (".sha256", ".md5sum"):
            Path(t + suffix).unlink()
    report = make_tars(dst, plugins=toy_pm, max_bytes=sum(sizes) - 1)
    assert [Path(t).name for t in report.tars] == ["2015.1.00123.S_001_of_002.tar",
                                                   "2015.1.00123.S_002_of_002.tar"]
    first, second = _volumes(report)
    with tarfile.open(report.tars[1]) as tar:
        assert not any(m.isdir() for m in tar.getmembers())
    assert "2015.1.00123.S/manifest-sha256.txt" in second
    assert "2015.1.00123.S/manifest-sha256.txt" not in first
    assert len(second) == 2  # the one file that did not fit, and the manifest


def test_a_file_changed_after_packaging_refuses_the_tar_in_full(toy_pm, toy_tree, dst, piscript,
                                                                header):
    pack(toy_pm, toy_tree, dst, piscript, header)
    member = "sg_ouss_id/group_ouss_id/member_ouss_id"
    target = dst / member / "script/run.py"
    target.write_bytes(target.read_bytes().replace(b"reduce", b"REDUCE"))
    with pytest.raises(Qa2Error) as exc:
        make_tars(dst, plugins=toy_pm)
    assert str(exc.value) == (f"{dst}: refused to archive: {member}/script/run.py: sha256 differs "
                              "from the manifest, read as it was written into the tar (changed "
                              "or corrupted); no tar was published [manifest.checksum]")
    assert sorted(p.name for p in dst.parent.iterdir()) == [
        "2015.1.00123.S", "2015.1.00123.S.qa2", "2015.1.00123.S.ticket.zip"]


def test_a_refusal_lists_the_first_ten_problems(toy_pm, toy_tree, dst, piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, header)
    member = dst / "sg_ouss_id/group_ouss_id/member_ouss_id"
    for i in range(12):
        (member / f"extra{i:02d}.txt").write_text("x")
    with pytest.raises(Qa2Error) as exc:
        make_tars(dst, plugins=toy_pm)
    assert len(exc.value.lines) == 10
    assert exc.value.lines[0] == str(exc.value)
    assert all(line.startswith(f"{dst}: refused to archive: ") for line in exc.value.lines)


def test_the_lock_names_the_tar_run_while_it_holds_it(toy_pm, toy_tree, dst, piscript, header):
    seen = []

    class Spy:
        QA2_CROSS_CUTTING = True

        @hookimpl
        def qa2_validate(self, view):
            seen.append(paths.lock_file(dst).read_text())
            return []

    pack(toy_pm, toy_tree, dst, piscript, header)
    toy_pm.register(Spy(), name="spy")
    make_tars(dst, plugins=toy_pm)
    assert seen and all(s.startswith(f"tar pid {os.getpid()}@") for s in seen), seen


def test_only_the_ous_levels_are_renamed():
    renames = {"sg_ouss_id": "science_goal.X", "group_ouss_id": "group.Y",
               "member_ouss_id": "member.Z"}
    rel = "sg_ouss_id/group_ouss_id/member_ouss_id/sg_ouss_id/member_ouss_id"
    assert _arcname("P", rel, renames) == \
        "P/science_goal.X/group.Y/member.Z/sg_ouss_id/member_ouss_id"


def test_a_placeholder_package_tarred_with_ous_uids_is_named_after_its_mous(
        toy_pm, toy_tree, dst, piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, header)
    report = make_tars(dst, ous_uids=UIDS, plugins=toy_pm)
    assert report.tars == [str(dst.parent / f"2015.1.00123.S_{MOUS}_001_of_001.tar")]
    assert report.warnings == []
    with tarfile.open(report.tars[0]) as tar:
        names = tar.getnames()
    assert f"2015.1.00123.S/{REAL}/script/run.py" in names
    assert not any("ouss_id" in n for n in names)


# ---------------------------------------------------------------- partial files, publishing


def test_only_partials_nobody_holds_are_removed(tmp_path):
    import fcntl

    from qa2core.writing.archive import remove_partials

    name = "2015.1.00123.S_001_of_001.tar"
    left = tmp_path / f"{name}.abc.partial"  # a killed run's leftover
    held = tmp_path / f"{name}.def.partial"  # a run writing it now
    other = tmp_path / "another.tar.ghi.partial"
    for p in (left, held, other):
        p.write_bytes(b"x")
    (tmp_path / f"{name}.lnk.partial").symlink_to(other)  # never followed, never removed
    fd = os.open(held, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert remove_partials(tmp_path, name) == [left]
    finally:
        os.close(fd)
    assert not left.exists() and held.exists() and other.exists()
    assert (tmp_path / f"{name}.lnk.partial").is_symlink()
    assert remove_partials(tmp_path, "*_of_*.tar") == [held]  # a glob of names; free now


def test_a_partial_file_is_ours_locked_and_beside_its_tar(tmp_path):
    import fcntl

    from qa2core.writing.archive import _partial

    fd, path = _partial(tmp_path / "P_001_of_001.tar")
    try:
        assert path.parent == tmp_path
        assert path.name.startswith("P_001_of_001.tar.") and path.name.endswith(".partial")
        other = os.open(path, os.O_RDONLY)
        with pytest.raises(BlockingIOError):  # held: another run's cleanup leaves it alone
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(other)
    finally:
        os.close(fd)


def test_publishing_never_replaces_a_tar_written_meanwhile(tmp_path):
    from qa2core.writing.archive import _publish

    tmp, path = tmp_path / "t.partial", tmp_path / "T.tar"
    tmp.write_bytes(b"ours")
    _publish(tmp, path)
    assert path.read_bytes() == b"ours" and tmp.exists()  # a link: the caller removes tmp
    again = tmp_path / "u.partial"
    again.write_bytes(b"theirs")
    with pytest.raises(Qa2Error) as exc:
        _publish(again, path)
    assert str(exc.value) == (f"{path}: exists (written meanwhile by another run); remove it "
                              "or choose --out")
    assert path.read_bytes() == b"ours"


def test_tars_of_one_package_may_run_side_by_side(toy_pm, toy_tree, dst, piscript, header):
    from qa2core.writing.lock import PackLock

    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS)
    with PackLock(dst, "tar", shared=True):  # another tar reading it now
        report = make_tars(dst, plugins=toy_pm)
    assert [Path(t).name for t in report.tars] == [f"2015.1.00123.S_{MOUS}_001_of_001.tar"]


def test_a_failed_write_names_the_tar_and_leaves_nothing(toy_pm, toy_tree, dst, piscript, header,
                                                        monkeypatch):
    import errno

    from qa2core.writing import archive

    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS)

    def full(self, data):  # what a full disk does to a write: no file name in the error
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive._TwoHashWriter, "write", full)
    with pytest.raises(OSError) as exc:
        make_tars(dst, plugins=toy_pm)
    tar = dst.parent / f"2015.1.00123.S_{MOUS}_001_of_001.tar"
    assert (exc.value.errno, exc.value.strerror, exc.value.filename) == (
        errno.ENOSPC, "No space left on device", str(tar))
    assert sorted(p.name for p in dst.parent.iterdir()) == sorted(
        ["2015.1.00123.S", "2015.1.00123.S.qa2", "2015.1.00123.S.ticket.zip"])


# ---------------------------------------------------------------- Cycle >= 5 members


MODERN = "member.uid___A001_X87c_X69"


def _modern(pm, tree, dst, piscript, header):
    pack(pm, tree, dst, piscript, header, style="cycle5-nopipe", ous_uids=UIDS)
    return dst


def _tar_listing(path: Path) -> list[tuple[str, str]]:
    with tarfile.open(path) as t:
        return [(m.name, "d" if m.isdir() else "f") for m in t.getmembers()]


def test_a_modern_member_is_tarred_as_product_volumes_and_an_auxiliary_tar(toy_pm, toy_tree, dst,
                                                                           piscript, header):
    _modern(toy_pm, toy_tree, dst, piscript, header)
    report = make_tars(dst, plugins=toy_pm)
    out = dst.parent
    volume, aux = (out / f"2015.1.00123.S_{MOUS}_001_of_001.tar",
                   out / f"2015.1.00123.S_{MOUS}_auxiliary.tar")
    assert report.tars == [str(volume), str(aux), str(out / f"{MODERN}.README.txt")]
    assert set(report.sha256) == set(report.md5) == {volume.name, aux.name}
    top = f"2015.1.00123.S/{REAL}"
    chain = ["2015.1.00123.S/science_goal.uid___A001_X87c_X67",
             "2015.1.00123.S/science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68", top]
    assert _tar_listing(volume) == [(d, "d") for d in (*chain, f"{top}/product")] + [
        (f"{top}/product/target.image.pbcor.fits", "f"), (f"{top}/product/target.pb.fits.gz", "f")]
    names = _tar_listing(aux)
    assert [n for n, kind in names if kind == "d"] == [*chain, *(f"{top}/{d}" for d in (
        "calibration", "log", "product", "qa", "script"))]  # empty ones too
    assert sorted(n for n, kind in names if kind == "f") == [
        "2015.1.00123.S/manifest-sha256.txt",
        f"{top}/log/casa-20160101-000000.log", f"{top}/{MODERN}.README.txt",
        f"{top}/script/{MODERN}.scriptForPI.py", f"{top}/script/run.py"]
    assert (out / f"{MODERN}.README.txt").read_bytes() == (dst / REAL / f"{MODERN}.README.txt").read_bytes()


@pytest.mark.mutates_source
def test_a_modern_member_without_fits_gets_no_product_volume(toy_pm, toy_tree, dst, piscript,
                                                            header):
    for fits in toy_tree.glob("img/*.fits"):
        fits.unlink()
    _modern(toy_pm, toy_tree, dst, piscript, header)
    report = make_tars(dst, plugins=toy_pm)
    assert [Path(t).name for t in report.tars] == [f"2015.1.00123.S_{MOUS}_auxiliary.tar",
                                                   f"{MODERN}.README.txt"]


def test_a_modern_tar_refuses_ous_uids_placeholders_and_what_exists(toy_pm, toy_tree, dst,
                                                                   piscript, header):
    _modern(toy_pm, toy_tree, dst, piscript, header)
    with pytest.raises(UsageError) as exc:
        make_tars(dst, ous_uids=UIDS, plugins=toy_pm)
    assert str(exc.value) == (f"{dst}: --ous-uids: this package's file names carry its members' "
                              "names already; tar it without the option")
    out = dst.parent
    for existing in (f"2015.1.00123.S_{MOUS}_auxiliary.tar.md5sum", f"{MODERN}.README.txt"):
        (out / existing).write_text("theirs")
        with pytest.raises(Qa2Error) as exc:
            make_tars(dst, plugins=toy_pm)
        assert str(exc.value) == f"{out / existing}: exists; remove it or choose --out"
        (out / existing).unlink()
    (out / f"2015.1.00123.S_{MOUS}_auxiliary.tar.x1.partial").write_text("a killed run's")
    report = make_tars(dst, plugins=toy_pm)
    assert report.warnings == [f"{out}/2015.1.00123.S_{MOUS}_auxiliary.tar.x1.partial: removed "
                               "the partial tar of an interrupted run"]


def test_a_modern_package_with_placeholder_names_is_refused_by_name(toy_pm, toy_tree, dst,
                                                                   piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, header, style="cycle5-nopipe", ous_uids="placeholders")
    member = dst / "sg_ouss_id" / "group_ouss_id" / "member_ouss_id"
    assert (member / "member_ouss_id.README.txt").is_file()
    with pytest.raises(Qa2Error) as exc:
        make_tars(dst, plugins=toy_pm)
    assert str(exc.value) == (f"{member}: refused to archive: its files are named after the member "
                              "placeholder; package it again with --ous-uids SOUS,GOUS,MOUS (real "
                              "names in every file name) [tar.placeholder]")


def test_a_readme_changed_after_packaging_stops_the_tar_in_either_shape(toy_pm, toy_tree, tmp_path,
                                                                        piscript, header):
    """The README a tar renames (placeholders + --ous-uids) or copies beside the tars (Cycle >= 5)
    is read once and checked against the manifest there: verify --complete does not hash."""
    for style, uids, readme, how in (
            ("", None, "README", ""),  # renamed before any tar is written
            ("cycle5-nopipe", UIDS, "member.uid___A001_X87c_X69.README.txt",
             ", read as it was written into the tar")):  # in the auxiliary tar, hashed on the way
        out = tmp_path / (style or "old")
        out.mkdir()
        dst = out / "2015.1.00123.S"
        pack(toy_pm, toy_tree, dst, piscript, header, style=style, ous_uids=uids)
        (member,) = dst.glob("*/*/*")
        path = member / readme
        path.write_bytes(path.read_bytes().replace(b"Cycle: 3", b"Cycle: 4"))
        with pytest.raises(Qa2Error) as exc:
            make_tars(dst, ous_uids=None if uids else UIDS, plugins=toy_pm)
        rel = path.relative_to(dst).as_posix()
        assert str(exc.value) == (f"{dst}: refused to archive: {rel}: sha256 differs from the "
                                  f"manifest{how} (changed or corrupted); no tar was published "
                                  "[manifest.checksum]")
        assert not list(out.glob("*.tar*")) and not list(out.glob("*README*"))


def test_the_tar_reads_the_readme_it_checks_without_following_a_link(tmp_path):
    from qa2core.writing import archive

    (tmp_path / "m").mkdir()
    (tmp_path / "elsewhere").write_bytes(b"x")
    (tmp_path / "m" / "README").symlink_to(tmp_path / "elsewhere")
    sha = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(Qa2Error):
        archive._checked(tmp_path, "m/README", {"m/README": sha})
    with pytest.raises(Qa2Error):
        archive._renamed_readmes(tmp_path, ["m"], {"m": "member.uid___A001_X1_X1"}, {"m/README": sha})


def test_a_volume_that_fails_takes_back_the_volumes_published_before_it(toy_pm, toy_tree, dst,
                                                                       piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS)
    run = dst / REAL / "script" / "run.py"  # one file a volume: others are published before it
    run.write_text(run.read_text().replace("reduce", "REDUCE"))  # same size, other bytes
    with pytest.raises(Qa2Error, match=r"sha256 differs from the manifest, read as it was written"):
        make_tars(dst, max_bytes=1, plugins=toy_pm)
    assert sorted(p.name for p in dst.parent.iterdir()) == [
        "2015.1.00123.S", "2015.1.00123.S.qa2", "2015.1.00123.S.ticket.zip"]
