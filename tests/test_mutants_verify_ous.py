"""``qa2 verify`` output, OUS names and appends, and what a refused first run leaves behind,
pinned where `make mutate` found them unpinned (docs/reliability.md, "Mutation testing")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.errors import Qa2Error, UsageError
from qa2core.hooks.model import Level
from qa2core.planning import ous, paths

UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
SG, GROUP = "science_goal.uid___A001_X87c_X67", "group.uid___A001_X87c_X68"


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "2015.1.00123.S"


def pack(pm, src, dst, piscript, header, **kw):
    kw.setdefault("mode", "copy")
    return engine.package(src, dst, piscript=piscript, plugins=pm, readme_path=header, **kw)


# ---------------------------------------------------------------------------- verify --json


def test_verify_json_has_every_key(toy_pm, toy_tree, dst, piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, header, mode="fake")
    out = json.loads(json.dumps(verify(dst, plugins=toy_pm).to_json()))  # what --json prints
    assert set(out) == {"ok", "packpath", "level", "plugin", "mode", "members", "findings"}
    assert (out["packpath"], out["level"], out["mode"]) == (str(dst), "full", "fake")
    assert out["members"] == ["sg_ouss_id/group_ouss_id/member_ouss_id"]


# ------------------------------------------------- a package's purpose, read from its README


def test_without_its_journal_a_package_is_still_checked_as_a_package(toy_pm, toy_tree, tmp_path,
                                                                     piscript, header):
    dst = tmp_path / "not-a-project-code"
    pack(toy_pm, toy_tree, dst, piscript, header)
    paths.journal_file(dst).unlink()
    report = verify(dst, plugins=toy_pm)
    rules = {f.rule for f in report.findings}
    assert "verify.staged" not in rules  # the README's listing says: a package
    assert "structure.project_code" in rules  # so the delivery rules ran


def test_without_a_readme_listing_a_tree_is_checked_as_staged(toy_pm, toy_tree, dst, piscript,
                                                              header):
    pack(toy_pm, toy_tree, dst, piscript, header, mode="fake")
    paths.journal_file(dst).unlink()
    readme = dst / "sg_ouss_id/group_ouss_id/member_ouss_id/README"
    readme.write_text("a pipeline README, as staged\n")
    report = verify(dst, plugins=toy_pm)
    assert [f.level for f in report.findings if f.rule == "verify.staged"] == [Level.INFO]


# ---------------------------------------------------------------------------- OUS names


def test_uids_are_sanitized_and_checked_with_the_message_in_full():
    assert ous.sanitize_uid(" uid://A001/X87c/X69 ") == "uid___A001_X87c_X69"
    assert ous.sanitize_uid("uid://A001:X87c:X69") == "uid___A001_X87c_X69"
    with pytest.raises(UsageError) as exc:
        ous.sanitize_uid("uid://nope")
    assert str(exc.value) == ("'uid://nope' is not an ALMA UID (want uid://A001/X87c/X69 or "
                              "uid___A001_X87c_X69)")
    with pytest.raises(UsageError) as exc:
        ous.parse_uids("uid://A001/X87c/X67,uid://A001/X87c/X68")
    assert str(exc.value) == ("--ous-uids 'uid://A001/X87c/X67,uid://A001/X87c/X68': give three "
                              "UIDs, SOUS,GOUS,MOUS")


def test_append_member_with_real_names(toy_pm, toy_tree, dst, piscript, header):
    """Onto nothing: refused, naming the missing group; then a new MOUS is added beside the
    first; the same MOUS again is refused, never overwritten."""
    with pytest.raises(Qa2Error) as exc:
        pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS, append="member")
    assert str(exc.value) == (f"{dst / SG / GROUP}: --append member needs this group, and it does "
                              "not exist; package it first with --append none or group")
    assert not dst.exists() and not paths.state_dir(dst).exists()  # nothing left behind

    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS)
    second = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X70"
    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=second, append="member")
    assert ous.members_of(dst) == [f"{SG}/{GROUP}/member.uid___A001_X87c_X69",
                                   f"{SG}/{GROUP}/member.uid___A001_X87c_X70"]
    assert verify(dst, plugins=toy_pm).ok
    before = sorted(p.name for p in (dst / SG / GROUP / "member.uid___A001_X87c_X70").rglob("*"))
    with pytest.raises(Qa2Error) as exc:
        pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=second, append="member")
    assert str(exc.value) == (f"{dst / SG / GROUP / 'member.uid___A001_X87c_X70'}: exists; "
                              "--append member never overwrites a member")
    assert sorted(p.name for p in (dst / SG / GROUP / "member.uid___A001_X87c_X70").rglob("*")) \
        == before


def test_append_group_with_real_names_onto_nothing_makes_the_whole_chain(toy_pm, toy_tree, dst,
                                                                        piscript, header):
    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS, append="group")
    assert ous.members_of(dst) == [f"{SG}/{GROUP}/member.uid___A001_X87c_X69"]
    assert verify(dst, plugins=toy_pm).ok


def test_a_refused_first_run_leaves_no_bookkeeping(toy_pm, toy_tree, dst, piscript, header):
    with pytest.raises(Qa2Error, match="--append member needs an existing package"):
        pack(toy_pm, toy_tree, dst, piscript, header, append="member")
    assert sorted(p.name for p in dst.parent.iterdir()) == []


def test_a_refused_run_keeps_the_bookkeeping_of_the_package_there(toy_pm, toy_tree, dst, piscript,
                                                                  header):
    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS)
    journal = paths.journal_file(dst).read_bytes()
    with pytest.raises(Qa2Error, match="never overwrites"):
        pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS, append="group")
    assert paths.journal_file(dst).read_bytes() == journal


@pytest.mark.parametrize(("append", "unit", "value"), [
    ("member", "the new member's MOUS", "uid://A001/X87c/X67,uid://A001/X87c/X68,<MOUS>"),
    ("group", "the new group's GOUS and MOUS", "uid://A001/X87c/X67,<GOUS>,<MOUS>"),
])
def test_an_append_without_uids_onto_real_names_says_what_to_give(toy_pm, toy_tree, dst, piscript,
                                                                  header, append, unit, value):
    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=UIDS)
    with pytest.raises(Qa2Error) as exc:
        pack(toy_pm, toy_tree, dst, piscript, header, append=append)
    assert str(exc.value) == (f"{dst / SG / GROUP}: --append {append}: the package has real OUS "
                              f"names, no placeholders; give {unit} with --ous-uids {value} "
                              "[append.ous_uids]")
    second = "uid://A001/X87c/X67,uid://A001/X87c/X6a,uid://A001/X87c/X70"
    pack(toy_pm, toy_tree, dst, piscript, header, ous_uids=second, append="group")
    with pytest.raises(Qa2Error) as exc:
        pack(toy_pm, toy_tree, dst, piscript, header, append=append)
    assert f" (2 groups: {SG}/{GROUP}, {SG}/group.uid___A001_X87c_X6a), " in str(exc.value)
    assert str(exc.value).startswith(f"{dst / SG / 'group.uid___A001_X87c_X6a'}: ")
