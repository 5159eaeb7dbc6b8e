"""``qa2 verify`` output, OUS names and appends, and what a refused first run leaves behind,
pinned where `make mutate` found them unpinned (docs/reliability.md, "Mutation testing")."""

from __future__ import annotations

import json
import os
import shutil
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


# ---------------------------------------------------------------- every field of a finding
# (level, rule, path, message), on a toy package broken the ways packages break

PLACEHOLDER_MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
M = PLACEHOLDER_MEMBER


@pytest.fixture
def made(toy_pm, toy_tree, tmp_path, piscript):
    header = tmp_path / "h.txt"
    header.write_bytes(b"Cycle: 3\nProject code: 2015.1.00123.S\n")
    pack = tmp_path / "out" / "2015.1.00123.S"
    pack.parent.mkdir()
    engine.package(toy_tree, pack, piscript=piscript, plugins=toy_pm, mode="copy",
                   readme_path=header)
    return pack


def _lines(pack: Path, pm, **kw) -> list[tuple[str, str, str, str]]:
    return [(f.level.value, f.rule, f.path, f.message) for f in verify(pack, plugins=pm, **kw).findings]


def _bytes(pack: Path) -> tuple[int, int]:
    files = [p for p in pack.rglob("*") if p.is_file() and p.name != "manifest-sha256.txt"]
    return len(files), sum(p.stat().st_size for p in files)


def test_a_clean_package_says_only_its_scriptforpi_version(made, toy_pm):
    assert _lines(made, toy_pm) == [
        ("INFO", "script.piscript_version", f"{M}/script/scriptForPI.py", "scriptForPI version 1.23")]


def test_each_broken_promise_is_one_exact_line(made, toy_pm, tmp_path):
    count, size = _bytes(made)
    broken = tmp_path / "out2" / "notacode"
    shutil.copytree(made, broken)
    shutil.copytree(made.with_name(made.name + ".qa2"), broken.with_name("notacode.qa2"))
    member = broken / M
    readme = (member / "README").read_bytes()
    (member / "README").write_bytes(b"Project code: 2016.1.00001.S\n" + readme.split(b"\n", 2)[2])
    (member / "script/run.py").write_text("changed\n")
    (member / "log/casa-20160101-000000.log").unlink()
    (member / "qa/extra.txt").write_text("x")
    assert _lines(broken, toy_pm) == [
        ("ERROR", "manifest.missing", f"{M}/log/casa-20160101-000000.log",
         "listed in the manifest but missing"),
        ("ERROR", "manifest.unlisted", f"{M}/qa/extra.txt", "file not listed in the manifest"),
        ("ERROR", "manifest.checksum", f"{M}/README",
         "sha256 differs from the manifest (corrupted or changed)"),
        ("ERROR", "manifest.checksum", f"{M}/script/run.py",
         "sha256 differs from the manifest (corrupted or changed)"),
        ("WARN", "structure.project_code", "notacode",
         "PACKPATH is not named after a project code (like 2016.1.01435.S)"),
        ("WARN", "readme.project_code", f"{M}/README",
         "header says project code 2016.1.00001.S, PACKPATH is notacode"),
        ("INFO", "script.piscript_version", f"{M}/script/scriptForPI.py", "scriptForPI version 1.23"),
    ]
    now_count, now_size = _bytes(broken)
    now_size -= (member / "qa/extra.txt").stat().st_size  # bytes are counted for listed files only
    fast = _lines(broken, toy_pm, level="fast")
    assert fast[:2] == [
        ("ERROR", "manifest.missing", f"{M}/log/casa-20160101-000000.log",
         "listed in the manifest but missing"),
        ("ERROR", "manifest.oxum", "manifest-sha256.txt",
         f"{now_count} files / {now_size} bytes on disk, manifest and journal say {count} files / "
         f"{size} bytes")]
    strict = _lines(broken, toy_pm, for_ingestion=True)
    assert ("ERROR", "structure.project_code", "notacode",
            "PACKPATH is not named after a project code (like 2016.1.01435.S)") in strict
    assert ("ERROR", "readme.project_code", f"{M}/README",
            "header says project code 2016.1.00001.S, PACKPATH is notacode") in strict


def test_a_readme_header_to_fill_a_pi_script_that_is_not_one_and_a_bad_manifest_line(
        made, toy_pm):
    member = made / M
    listing = (member / "README").read_bytes().split(b"#####", 1)[1]
    (member / "README").write_bytes(b"Project code: <fill in>\n#####" + listing)
    (member / "script/scriptForPI.py").write_bytes(os.urandom(64).replace(b"\0", b"\1"))
    lines = _lines(made, toy_pm, level="complete")
    assert ("WARN", "readme.header", f"{M}/README", "README has no header, or its template's "
            "<fill in> fields (project code, SB, PI, CASA version: --readme)") in lines
    bad = [line for line in lines if line[1] == "script.piscript_content"]
    assert len(bad) == 1 and bad[0][:3] == ("ERROR", "script.piscript_content",
                                            f"{M}/script/scriptForPI.py")
    assert bad[0][3].startswith("not a scriptForPI: ")
    (member / "script/scriptForPI.py").write_text("print('a PI script without its $Id line')\n")
    assert ("WARN", "script.piscript_identity", f"{M}/script/scriptForPI.py",
            "no '$Id: scriptForPI.py' line: is it the master copy of scriptForPI?") in _lines(
                made, toy_pm, level="complete")
    manifest = made / "manifest-sha256.txt"
    manifest.write_text(manifest.read_text() + "not a manifest line\n")
    got = _lines(made, toy_pm)
    assert [line for line in got if line[1] == "manifest.line"] == [
        ("ERROR", "manifest.line", "manifest-sha256.txt", got_message(got))]


def got_message(lines):
    (line,) = [x for x in lines if x[1] == "manifest.line"]
    assert "not a manifest line" in line[3] or "line" in line[3]
    return line[3]


def test_a_modern_pi_script_is_judged_by_its_member_name_up_to_the_size_limit(toy_pm, toy_tree,
                                                                             tmp_path, piscript):
    from qa2core.planning import piscript as pi

    header = tmp_path / "h.txt"
    header.write_bytes(b"Cycle: 5\nPI name: nobody\n")  # no project code
    pack = tmp_path / "out" / "2017.1.00271.S"
    pack.parent.mkdir()
    engine.package(toy_tree, pack, piscript=piscript, plugins=toy_pm, mode="copy", style="cycle5-nopipe",
                   readme_path=header, ous_uids="uid://A001/X1/X1,uid://A001/X1/X2,uid://A001/X1/X3")
    member = "science_goal.uid___A001_X1_X1/group.uid___A001_X1_X2/member.uid___A001_X1_X3"
    script = pack / member / "script" / "member.uid___A001_X1_X3.scriptForPI.py"
    where = f"{member}/script/{script.name}"
    lines = _lines(pack, toy_pm, level="complete")
    assert ("WARN", "readme.project_code", f"{member}/member.uid___A001_X1_X3.README.txt",
            "header says project code (none), PACKPATH is 2017.1.00271.S") in lines
    assert ("INFO", "script.piscript_version", where, "scriptForPI version 1.23") in lines
    for size, rules in ((pi.MAX_BYTES, {("ERROR", "script.piscript_content")}),
                        (pi.MAX_BYTES + 1, {("WARN", "script.piscript_identity")})):
        script.write_bytes(b"\xff" * size)  # not UTF-8: judged only up to the limit
        got = {(level, rule) for level, rule, path, _ in _lines(pack, toy_pm, level="complete")
               if rule.startswith("script.piscript") and path == where}
        assert got == rules, size
    script.write_text("print('calibrate')\n")  # Python, but nothing says scriptForPI
    assert ("WARN", "script.piscript_identity", where, "no '$Id: scriptForPI.py' line: is it the "
            "master copy of scriptForPI?") in _lines(pack, toy_pm, level="complete")
    script.write_text("# the scriptForPI of this member\nprint('calibrate')\n")
    assert not [x for x in _lines(pack, toy_pm, level="complete") if x[2] == where]


# ---------------------------------------------------------------- never through a link
# Every reader of a package opens without following a link (O_NOFOLLOW): a file swapped for a
# link after the walk is refused where it is opened, not read through.


def test_the_readers_of_a_package_never_follow_a_link(tmp_path):
    from qa2core.checks import verify as v

    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"Contents of this member directory as packaged by qa2 secret")
    base = tmp_path / "member"
    (base / "script").mkdir(parents=True)
    (base / "README").symlink_to(outside)
    (base / "script" / "x.py").symlink_to(outside)
    assert v._head(base / "README") is None
    assert v._opener(base, "m", None)("script/x.py") is None
    assert v._opener(base, "m", {})("script/x.py") is None
    assert v._purpose_from_readme(tmp_path, ["member"]) is v.Purpose.STAGE


def test_the_purpose_is_read_from_any_member_readme(tmp_path):
    from qa2core.checks import verify as v
    from qa2core.writing import readme

    for name, text in (("a", b"no listing here\n"), ("b", b"header\n" + readme.LISTING_INTRO)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "README").write_bytes(text)
    assert v._purpose_from_readme(tmp_path, ["none", "a", "b"]) is v.Purpose.PACKAGE
    assert v._purpose_from_readme(tmp_path, ["none", "a"]) is v.Purpose.STAGE


def test_a_rule_that_reads_a_file_to_its_end_spares_the_checksum_pass(made, toy_pm, monkeypatch):
    """One read per byte: what a rule read through the opener is not hashed again."""
    from qa2core.writing import fileops

    hashed = []
    real = fileops.hash_file
    monkeypatch.setattr(fileops, "hash_file", lambda path, follow=True: (
        hashed.append(os.fspath(path)), real(path, follow))[1])
    report = verify(made, plugins=toy_pm)
    assert report.ok
    pb = f"{M}/product/target.pb.fits.gz"  # read by the PB value rule, to its end
    assert not [p for p in hashed if p.endswith(pb)] and hashed  # the others still hashed


def test_fast_verify_without_a_journal_counts_listed_sizes_from_the_disk(made, toy_pm):
    from qa2core.planning import paths

    paths.journal_file(made).unlink()
    assert [x for x in _lines(made, toy_pm, level="fast") if x[1] == "manifest.oxum"] == []
    gone = made / M / "log/casa-20160101-000000.log"
    count, size = _bytes(made)
    gone.unlink()
    got = [x for x in _lines(made, toy_pm, level="fast") if x[1] == "manifest.oxum"]
    assert got == [("ERROR", "manifest.oxum", "manifest-sha256.txt",
                    f"{count - 1} files / {size - len('log line') - 1} bytes on disk, manifest and "
                    f"journal say {count} files / {size - len('log line') - 1} bytes")]


def test_member_prefixed_names_are_checked_against_their_directory(tmp_path):
    from qa2core.checks import member_names

    real = "science_goal.uid___A001_X1_X1/group.uid___A001_X1_X2/member.uid___A001_X1_X3"
    base = tmp_path / real
    files = {
        "member.uid___A001_X1_X3.README.txt": "", "script/member.uid___A001_X1_X3.scriptForPI.py": "",
        "qa/sub/member.uid___A001_X1_X9.weblog.tgz": "", "log/member_ouss_id.casa_commands.log": "",
        "product/uid___A001_X1_X3.Orion.pbcor.fits": "", "calibration/uid___A002_X5_X6.ms.calapply.txt": "",
    }
    for rel, text in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)
    got = [(f.level.value, f.rule, f.path, f.message) for f in member_names.findings(tmp_path, real)]
    assert sorted(got) == sorted([
        ("ERROR", "names.member_prefix", f"{real}/qa/sub/member.uid___A001_X1_X9.weblog.tgz",
         "named after another member: member.uid___A001_X1_X9, the directory is "
         "member.uid___A001_X1_X3"),
        ("ERROR", "names.placeholder", f"{real}/log/member_ouss_id.casa_commands.log",
         "a placeholder token left in a name once real UIDs are given: member_ouss_id, the "
         "directory is member.uid___A001_X1_X3"),
        ("ERROR", "names.member_prefix", f"{real}/product/uid___A001_X1_X3.Orion.pbcor.fits",
         "the pipeline's uid___A001_X1_X3. prefix was not renamed to member.uid___A001_X1_X3. "
         "(Cycle >= 5 names)"),
    ])
    (base / "script/member.uid___A001_X1_X3.scriptForPI.py").rename(base / "script/scriptForPI.py")
    assert [(f.level.value, f.rule, f.path, f.message) for f in member_names.findings(tmp_path, real)
            if f.level.value == "WARN"] == [
        ("WARN", "names.member_prefix", f"{real}/script/", "no member.uid___A001_X1_X3.scriptForPI.py: "
         "Cycle >= 5 deliveries name the PI script after the member")]
    placeholder = "sg_ouss_id/group_ouss_2_id/member_ouss_2_id"
    pbase = tmp_path / placeholder
    (pbase / "script").mkdir(parents=True)
    for rel in ("member_ouss_id.README.txt", "script/member_ouss_id.scriptForPI.py",
                "member_ouss_2_id.notes.txt", "uid___A001_X1_X3.kept.txt"):
        (pbase / rel).write_text("")
    assert member_names.findings(tmp_path, placeholder) == []  # either token; no MOUS to rename
    (pbase / "member.uid___A001_X1_X3.x.txt").write_text("")
    assert [f.rule for f in member_names.findings(tmp_path, placeholder)] == ["names.member_prefix"]
    (base / "member.uid___A001_X1_X3.README.txt").rename(base / "README")  # older shape: no rule
    assert member_names.findings(tmp_path, real) == []


def test_a_journal_entry_is_still_valid_only_for_that_size_and_mtime(tmp_path):
    from qa2core.writing import journal

    f = tmp_path / "f"
    f.write_bytes(b"abc")
    st = f.stat()
    entry = journal.Entry((), "copy", "copy", "0" * 64, st.st_size, st.st_mtime_ns)
    assert journal.still_valid(entry, str(f))
    assert not journal.still_valid(None, str(f))
    assert not journal.still_valid(entry, str(tmp_path / "gone"))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert not journal.still_valid(entry, str(f))  # mtime alone
    f.write_bytes(b"abcd")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not journal.still_valid(entry, str(f))  # size alone


def test_bookkeeping_this_run_made_is_dropped_only_when_it_holds_just_the_lock(tmp_path):
    from qa2core.writing.build import _drop_state

    state = tmp_path / "P.qa2"
    state.mkdir()
    (state / "lock").write_text("")
    (state / "journal.json").write_text("{}")
    _drop_state(state)
    assert state.is_dir()  # an earlier run's journal: kept
    (state / "journal.json").unlink()
    _drop_state(state)
    assert not state.exists()
    _drop_state(tmp_path / "never")  # nothing there: nothing to do


def test_what_an_interrupted_run_left_is_said_by_its_state(made, toy_pm):
    from qa2core.planning import paths

    partial = paths.partial_dir(made)
    partial.mkdir()
    leftovers = ("INFO", "package.leftovers", str(partial), "leftovers of an interrupted run (the "
                 "package is as it was; the next run removes them)")
    interrupted = ("ERROR", "package.interrupted", str(partial), "a run was killed while "
                   "swapping this package in: run qa2 package (or qa2 tar) again to complete or "
                   "undo it before trusting the package")
    assert leftovers in _lines(made, toy_pm)  # killed before its swap: no marker
    (partial / "unit").mkdir()
    (partial / "swap").write_text('{"unit": "sg_ouss_id"')  # marker cut short: no swap began
    assert leftovers in _lines(made, toy_pm)
    (partial / "swap").write_text('{"unit": "sg_ouss_id"}')
    assert leftovers in _lines(made, toy_pm)  # marker whole, the new unit not moved yet
    (partial / "previous").mkdir()
    assert interrupted in _lines(made, toy_pm)  # the old unit moved aside: half swapped
    (partial / "previous").rmdir()
    (partial / "unit").rmdir()
    assert interrupted in _lines(made, toy_pm)  # the new unit moved in


def test_verify_names_what_it_cannot_check(made, toy_pm, tmp_path):
    with pytest.raises(UsageError) as exc:
        verify(made, level="quick", plugins=toy_pm)
    assert str(exc.value) == "unknown verify level 'quick'; valid: fast, complete, full"
    with pytest.raises(UsageError) as exc:
        verify(tmp_path / "none", plugins=toy_pm)
    assert str(exc.value) == f"{tmp_path / 'none'}: PACKPATH does not exist"
    (tmp_path / "file").write_text("x")
    with pytest.raises(Qa2Error) as exc:
        verify(tmp_path / "file", plugins=toy_pm)
    assert str(exc.value) == f"{tmp_path / 'file'}: not a directory, so not a qa2 package"
    (tmp_path / "empty").mkdir()
    with pytest.raises(Qa2Error) as exc:
        verify(tmp_path / "empty", plugins=toy_pm)
    assert str(exc.value) == (f"{tmp_path / 'empty'}: not a qa2 package (no sg_ouss_id/"
                              "group_ouss_id/member_ouss_id or science_goal.*/group.*/member.* "
                              "chain below it)")
    report = verify(made, plugins=toy_pm)
    assert (report.mode, report.level, report.members) == ("copy", "full", [M])


def test_a_rehearsal_is_named_by_its_first_placeholders(toy_pm, toy_tree, tmp_path, piscript, header):
    pack = tmp_path / "out" / "2015.1.00123.S"
    pack.parent.mkdir()
    engine.package(toy_tree, pack, piscript=piscript, plugins=toy_pm, mode="fake", readme_path=header)
    from qa2core.checks import content

    found = content.placeholders(str(pack / M))  # in the bytes: every empty file is one
    assert len(found) > 3
    assert next(x for x in _lines(pack, toy_pm) if x[1] == "package.fake") == (
        "WARN", "package.fake", f"{M}/{found[0]}",
        "FAKE package (names only): not deliverable: empty placeholder(s) where a delivery has "
        f"content ({', '.join(found[:3])}, ...)")
    strict = [x for x in _lines(pack, toy_pm, for_ingestion=True) if x[1] == "package.fake"]
    assert strict and all(x[0] == "ERROR" for x in strict)


def test_anything_outside_the_ous_tree_is_one_line_naming_it(made, toy_pm):
    (made / "NOTES.txt").write_text("x")
    (made / "junk").mkdir()
    (made / "sg_ouss_id" / "stray.txt").write_text("y")
    (made / "manifest-sha256.txt.bak").write_text("z")
    why = "outside the OUS tree (sg/group/member): a package holds nothing else but the manifest; remove it"
    got = [x for x in _lines(made, toy_pm, for_ingestion=True) if x[1].startswith("structure.")]
    assert got == [
        ("ERROR", "structure.outside", "NOTES.txt", f"file {why}"),
        ("ERROR", "structure.outside", "junk/", f"directory {why}"),
        ("ERROR", "structure.outside", "manifest-sha256.txt.bak", f"file {why}"),
        ("ERROR", "structure.outside", "sg_ouss_id/stray.txt", f"file {why}"),
        ("ERROR", "structure.placeholder", M, "placeholder 'sg_ouss_id': the archive needs real "
         "OUS names (qa2 package/tar --ous-uids SOUS,GOUS,MOUS)"),
    ]


def test_placeholders_are_empty_files_of_kinds_never_empty_and_empty_table_directories(tmp_path):
    from qa2core.checks import content

    member = tmp_path / "m"
    for d in ("product", "qa", "calibrated/X.ms", "calibration/sub.dir", "log/plain"):
        (member / d).mkdir(parents=True)
    (member / "script").mkdir()
    (member / "script" / "scriptForImaging.py").write_bytes(b"")  # empty by design
    (member / "script" / "run.py").write_bytes(b"")
    (member / "qa" / "notes.unknownext").write_bytes(b"")  # a kind qa2 does not judge
    got = content.placeholders(str(member))
    assert sorted(got) == ["calibrated/X.ms/", "calibration/sub.dir/", "script/run.py"]
    for i in range(12):
        (member / "product" / f"p{i:02d}.fits").write_bytes(b"")
    assert len(content.placeholders(str(member))) == 10  # the first ten tell enough
    assert len(content.placeholders(str(member), limit=3)) == 3


def test_the_journal_file_is_compact_ascii_json_of_version_3(made):
    from qa2core.planning import paths
    from qa2core.writing import journal

    raw = paths.journal_file(made).read_bytes()
    assert raw.isascii() and b", " not in raw and b": " not in raw
    data = json.loads(raw)
    assert data["version"] == 3 and set(data) >= {"run", "members", "entries"}
    assert data["members"] == {M: data["run"]}
    book = journal.load(made)
    assert book.run == data["run"] and book.members == data["members"]
    assert journal.dump({}, {"mode": "copy"}, (), {"b": {"x": "1"}, "a": {"y": "é"}}).isascii()
