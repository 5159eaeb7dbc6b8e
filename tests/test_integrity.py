"""Integrity gates: a fake never passes for real; no links, no special files, nothing of the
reducer's machine in what is delivered; identical runs give identical packages."""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.errors import Qa2Error
from qa2core.planning import paths
from qa2core.testing import tree_state, write_tree
from qa2core.writing import manifest
from qa2core.writing.archive import make_tars

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"


def pack(pm, src, dst, piscript, **kw):
    return engine.package(src, dst, piscript=piscript, plugins=pm, **kw)


@pytest.fixture
def dst(tmp_path):
    return tmp_path / "out" / "2015.1.00123.S"


@pytest.fixture(autouse=True)
def _out(tmp_path):
    (tmp_path / "out").mkdir()


# ---------------------------------------------------------------------------- fake is never real


@pytest.mark.parametrize("mode", ["fake", "ticket"])
def test_a_rehearsal_is_reported_fake_fails_ingestion_and_is_never_archived(
        toy_pm, toy_tree, dst, piscript, mode):
    pack(toy_pm, toy_tree, dst, piscript, mode=mode, ous_uids=UIDS)
    report = verify(dst, plugins=toy_pm)
    fake = [f for f in report.findings if f.rule == "package.fake"]
    assert fake and "FAKE package (names only): not deliverable" in fake[0].message
    assert not verify(dst, for_ingestion=True, plugins=toy_pm).ok
    with pytest.raises(Qa2Error, match=r"refused to archive.*FAKE package"):
        make_tars(dst, plugins=toy_pm)
    assert not list(dst.parent.glob("*.tar*"))


def test_a_rehearsal_without_its_journal_is_still_fake(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="fake", ous_uids=UIDS)
    paths.journal_file(dst).unlink()
    assert not verify(dst, for_ingestion=True, plugins=toy_pm).ok
    with pytest.raises(Qa2Error, match="FAKE"):
        make_tars(dst, plugins=toy_pm)


@pytest.mark.parametrize(("first", "second"), [("copy", "fake"), ("copy", "ticket"),
                                               ("fake", "copy"), ("hard", "fake")])
def test_rehearsal_and_real_units_never_mix(toy_pm, toy_tree, dst, piscript, first, second):
    pack(toy_pm, toy_tree, dst, piscript, mode=first)
    def state():  # the lock file's time says only that a run looked
        return {k: v for k, v in tree_state(dst.parent).items() if not k.endswith(".qa2/lock")}

    before = state()
    with pytest.raises(Qa2Error, match=r"cannot be added to it.*\[append.mixed\]"):
        pack(toy_pm, toy_tree, dst, piscript, mode=second, append="group")
    assert state() == before  # package, manifest, journal and ticket untouched


def test_a_real_package_without_its_manifest_fails_verify(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert verify(dst, plugins=toy_pm).ok
    (dst / manifest.NAME).unlink()
    report = verify(dst, level="fast", plugins=toy_pm)
    assert not report.ok and any(f.rule == "manifest.absent" for f in report.findings)


# ---------------------------------------------------------------------------- links and specials


@pytest.mark.mutates_source
def test_links_inside_origpath_ship_as_the_files_they_point_to(toy_pm, toy_tree, dst, piscript):
    (toy_tree / "scripts/alias.py").symlink_to(toy_tree / "scripts/run.py")
    pack(toy_pm, toy_tree, dst, piscript, mode="hard")
    shipped = dst / MEMBER / "script/alias.py"
    assert not shipped.is_symlink() and shipped.read_text() == "print('reduce')\n"
    assert verify(dst, plugins=toy_pm).ok


@pytest.mark.parametrize("where", ["scripts/outside.py", "cal.ms.split.cal/table.f1"])
def test_a_link_leaving_origpath_is_refused_by_name(toy_pm, tmp_path, dst, piscript, where):
    src = write_tree(tmp_path / "red", {"toy.marker": "", "scripts/run.py": "x",
                                        "cal.ms.split.cal/table.dat": "T",
                                        "cal.ms.split.cal/table.info": "Type = Measurement Set\n"})
    secret = write_tree(tmp_path / "home", {"secret.py": "password"}) / "secret.py"
    (src / where).symlink_to(secret)
    with pytest.raises(Qa2Error) as err:
        pack(toy_pm, src, dst, piscript, mode="copy", style="cycle0-nopipe")
    assert any(str(src / where) in line and "leaving ORIGPATH" in line for line in err.value.lines)
    assert not dst.exists()


def test_dev_zero_linked_into_a_table_never_fills_the_disk(toy_pm, tmp_path, dst, piscript):
    src = write_tree(tmp_path / "red", {"toy.marker": "", "cal.ms.split.cal/table.dat": "T"})
    (src / "cal.ms.split.cal/table.f9").symlink_to("/dev/zero")
    with pytest.raises(Qa2Error) as err:
        pack(toy_pm, src, dst, piscript, mode="copy", style="cycle0-nopipe")
    assert err.value.lines == (f"{src}/cal.ms.split.cal/table.f9: symbolic link leaving ORIGPATH "
                               "(to /dev/zero): refused; copy the file into the reduction or "
                               "remove the link",)


@pytest.mark.parametrize("where", ["scripts/pipe.py", "cal.ms.split.cal/table.f0"])
def test_a_fifo_in_the_input_is_refused_without_being_opened(toy_pm, tmp_path, dst, piscript,
                                                             where):
    src = write_tree(tmp_path / "red", {"toy.marker": "", "scripts/run.py": "x",
                                        "cal.ms.split.cal/table.dat": "T"})
    os.mkfifo(src / where)  # opening it for reading would block for ever
    with pytest.raises(Qa2Error) as err:
        pack(toy_pm, src, dst, piscript, mode="copy", style="cycle0-nopipe")
    assert any(str(src / where) in line and "FIFO" in line for line in err.value.lines)


def test_verify_never_follows_a_link_nor_opens_a_fifo(toy_pm, toy_tree, dst, piscript, tmp_path):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    script = dst / MEMBER / "script/run.py"
    outside = tmp_path / "copy_of_run.py"
    outside.write_bytes(script.read_bytes())
    script.unlink()
    script.symlink_to(outside)  # same bytes, so sha256sum -c would pass
    log = next((dst / MEMBER / "log").iterdir())
    log.unlink()
    os.mkfifo(log)
    report = verify(dst, plugins=toy_pm)
    bad = {f.path: f.message for f in report.findings if f.rule == "structure.special"}
    assert not report.ok
    assert "a symbolic link" in bad[f"{MEMBER}/script/run.py"]
    assert "a FIFO" in bad[f"{MEMBER}/log/{log.name}"]
    with pytest.raises(Qa2Error, match="refused to archive"):
        make_tars(dst, plugins=toy_pm)


def test_a_table_tgz_holds_regular_files_and_no_owner(toy_pm, tmp_path, dst, piscript):
    src = write_tree(tmp_path / "red", {"toy.marker": "", "x.pb/table.dat": "T",
                                        "x.pb/table.info": "Type = Image\n", "x.pb/logtable/t": "L"})
    (src / "x.pb/alias").symlink_to(src / "x.pb/table.dat")
    pack(toy_pm, src, dst, piscript, mode="copy")
    with tarfile.open(dst / MEMBER / "product/x.pb.tgz") as tar:
        members = tar.getmembers()
    assert {m.name for m in members} >= {"x.pb", "x.pb/table.dat", "x.pb/alias", "x.pb/logtable/t"}
    assert all(m.isfile() or m.isdir() for m in members)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}


# ---------------------------------------------------------------------------- what is delivered


def _delivered_bytes(dst: Path) -> list[tuple[str, bytes]]:
    out = [(p.name, p.read_bytes()) for p in sorted(dst.rglob("*")) if p.is_file()]
    out.append(("ticket", paths.ticket_zip(dst).read_bytes()))
    return out


def test_nothing_delivered_names_the_reducers_machine(toy_pm, toy_tree, dst, piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy", readme_path=header, ous_uids=UIDS)
    tars = make_tars(dst, ous_uids=UIDS, plugins=toy_pm).tars
    secrets = [str(toy_tree).encode(), str(dst.parent).encode(), str(piscript.parent).encode()]
    for name, data in _delivered_bytes(dst) + [(t, Path(t).read_bytes()) for t in tars]:
        assert not any(s in data for s in secrets), name
    with zipfile.ZipFile(paths.ticket_zip(dst)) as zf:
        assert not any(str(toy_tree) in n for n in zf.namelist())
    with tarfile.open(tars[0]) as tar:
        assert {(m.uid, m.uname, m.gname) for m in tar.getmembers()} == {(0, "", "")}


def test_two_identical_runs_give_identical_packages_and_tars(toy_pm, toy_tree, tmp_path, piscript,
                                                            header):
    tars = []
    states = []
    for run in ("a", "b"):
        dst = tmp_path / run / "2015.1.00123.S"
        dst.parent.mkdir()
        pack(toy_pm, toy_tree, dst, piscript, mode="copy", readme_path=header, ous_uids=UIDS)
        states.append(tree_state(dst))
        tar = make_tars(dst, ous_uids=UIDS, plugins=toy_pm).tars[0]
        tars.append(hashlib.sha256(Path(tar).read_bytes()).hexdigest())
    assert states[0] == states[1]
    assert tars[0] == tars[1]


def test_a_tar_of_a_package_that_fails_verify_is_refused(toy_pm, toy_tree, dst, piscript):
    pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    target = dst / MEMBER / "script/run.py"
    target.write_bytes(target.read_bytes().replace(b"reduce", b"REDUCE"))
    with pytest.raises(Qa2Error, match=r"refused to archive: .*run\.py: sha256 differs"):
        make_tars(dst, plugins=toy_pm)
    assert not list(dst.parent.glob("*.tar*"))


def test_a_refused_link_on_a_rerun_falls_back_to_a_copy(toy_pm, toy_tree, dst, piscript,
                                                        monkeypatch):
    import errno

    pack(toy_pm, toy_tree, dst, piscript, mode="copy")

    def refuse(*a, **k):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    report = pack(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert {f.action for f in report.files} == {"reused", "readme"}
    assert sum("hard links refused" in w for w in report.warnings) == 1
    assert verify(dst, plugins=toy_pm).ok
