"""File names (issue "integrity gates", point 5): any name works.

A name with a newline, backslash, tab, carriage return or bytes that are not UTF-8 is packaged
with its own bytes; the manifest escapes it as GNU ``sha256sum`` does, so ``sha256sum -c`` and
``qa2 verify`` pass; the README lists it visibly on one line; ``--json`` carries it as a
surrogate-escaped string; ``qa2 tar`` archives its bytes. docs/reliability.md, "File names".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.hooks.model import Level
from qa2core.testing import tree_state, write_tree
from qa2core.writing import journal, manifest, readme

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
REAL_MEMBER = "science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/member.uid___A001_X87c_X69"


BASE = {
    "toy.marker": "",
    "scripts/run.py": "print('reduce')\n",
    "img/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "img/target.pb.fits": bytes(range(256)) * 64,
}
# source path (bytes, as on disk) -> (packaged path in the member, as README shows the name)
ODD = {
    b"scripts/new\nline.py": ("script/new\nline.py", "new\\nline.py"),
    b"scripts/back\\slash.py": ("script/back\\slash.py", "back\\\\slash.py"),
    b"logs/tab\there.log": ("log/tab\there.log", "tab\\there.log"),
    b"scripts/carriage\rreturn.py": ("script/carriage\rreturn.py", "carriage\\rreturn.py"),
    b"img/\\lead\nand\\both.image.pbcor.fits": ("product/\\lead\nand\\both.image.pbcor.fits",
                                               "\\\\lead\\nand\\\\both.image.pbcor.fits"),
    b"img/odd\nbeam.pb.fits": ("product/odd\nbeam.pb.fits.gz", "odd\\nbeam.pb.fits.gz"),
}
# Names that are not UTF-8: os gives them as str with surrogate escapes (b"\xe9" -> "\udce9").
NOT_UTF8 = {
    b"scripts/caf\xe9.py": (os.fsdecode(b"script/caf\xe9.py"), "caf\\xe9.py"),
    b"logs/\xff\xfe\nboth.log": (os.fsdecode(b"log/\xff\xfe\nboth.log"), "\\xff\\xfe\\nboth.log"),
}
SETS = {"escaped": ODD, "not-utf8": NOT_UTF8}

def _write_bytes(root: Path, rel: bytes, content: bytes) -> None:
    path = os.path.join(os.fsencode(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)


def content_of(rel: bytes) -> bytes:
    return b"# " + rel.replace(b"\n", b"|") + b"\n"


@pytest.fixture(params=["escaped", "not-utf8"])
def odd(request) -> dict[bytes, tuple[str, str]]:
    return SETS[request.param]


@pytest.fixture
def src(tmp_path, odd):
    root = write_tree(tmp_path / "reduction", BASE)
    for rel in odd:
        _write_bytes(root, rel, content_of(rel))
    before = tree_state(root)
    yield root
    assert tree_state(root) == before, "the source changed"


@pytest.fixture
def dst(tmp_path):
    return tmp_path / "2015.1.00123.S"


def _package(toy_pm, src, dst, piscript, header, mode):
    return engine.package(src, dst, readme_path=header, piscript=piscript, mode=mode,
                          plugins=toy_pm)


def _files(root: Path) -> dict[bytes, bytes]:
    """relative path (bytes) -> content of every regular file below ``root``."""
    out = {}
    base = os.fsencode(root)
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, base)] = fh.read()
    return out


def _coreutils_major() -> int:
    first = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True).stdout
    return int(re.search(r"(\d+)\.\d+", first.splitlines()[0]).group(1))


@pytest.mark.parametrize("mode", ["copy", "hard"])
def test_package_verifies_and_sha256sum_accepts_the_manifest(toy_pm, src, dst, piscript, header,
                                                             odd, mode):
    report = _package(toy_pm, src, dst, piscript, header, mode)
    member = dst / MEMBER
    for rel, (dest, _shown) in odd.items():
        packaged = os.path.join(os.fsencode(member), os.fsencode(dest))
        assert os.path.isfile(packaged), dest
        if not dest.endswith(".gz"):
            with open(packaged, "rb") as fh:
                assert fh.read() == content_of(rel)
        assert dest in {f.dest for f in report.files}

    checked = verify(dst, plugins=toy_pm)
    assert checked.ok, [f.line() for f in checked.findings if f.level is Level.ERROR]

    run = subprocess.run(["sha256sum", "-c", "--strict", manifest.NAME], cwd=dst,
                         capture_output=True)
    assert run.returncode == 0, run.stdout + run.stderr
    # every file on disk is listed under its own name, and nothing else
    on_disk = {os.fsdecode(p) for p in _files(dst)} - {manifest.NAME}
    assert set(manifest.read(dst)) == on_disk


def test_manifest_lines_are_the_ones_gnu_sha256sum_writes(toy_pm, src, dst, piscript, header, odd):
    if _coreutils_major() < 9:
        pytest.skip("coreutils < 9 does not escape a carriage return")
    _package(toy_pm, src, dst, piscript, header, "copy")
    ours = (dst / manifest.NAME).read_bytes()
    names = [os.fsencode(p) for p in sorted(manifest.read(dst))]
    theirs = subprocess.run([b"sha256sum", b"--", *names], cwd=dst, capture_output=True,
                            check=True).stdout
    assert ours == theirs
    for rel, (dest, _shown) in odd.items():
        raw = os.fsencode(f"{MEMBER}/{dest}")
        if b"\n" in raw or b"\\" in raw or b"\r" in raw:  # escaped, with a leading backslash
            escaped = raw.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
            assert re.search(rb"(?m)^\\[0-9a-f]{64}  " + re.escape(escaped) + rb"$", ours), rel
        else:  # written as it is: its own bytes, which are not UTF-8
            assert re.search(rb"(?m)^[0-9a-f]{64}  " + re.escape(raw) + rb"$", ours), rel


def test_readme_lists_each_name_visibly_on_one_line(toy_pm, src, dst, piscript, header, odd):
    _package(toy_pm, src, dst, piscript, header, "copy")
    text = (dst / MEMBER / "README").read_bytes()
    assert text.startswith(header.read_bytes())
    listing = text.split(readme.LISTING_INTRO + b"\n\n", 1)[1].decode("utf-8")  # strict: valid
    lines = listing.splitlines()  # any line break at all (\r, \x85, \u2028 too) would show here
    assert listing.endswith("\n") and listing.count("\n") == len(lines)
    assert lines[0] == "member_ouss_id/"
    entries = [line for line in lines[1:] if not line.endswith("/")]
    member_files = [p for p in _files(dst / MEMBER)]
    assert len(entries) == len(member_files)
    for line in lines[1:]:
        assert re.fullmatch(r"(?:\|   |    )*(?:\|-- |`-- )\S.*", line), line
        assert line.isprintable(), line
    for _dest, shown in odd.values():
        assert any(line.endswith(f"-- {shown}") for line in lines), (shown, listing)
    assert b"\t" not in text and b"\r" not in text and b"\xe9" not in text and b"\xff" not in text


def test_names_are_escaped_only_when_they_must_be():
    assert readme.visible("target.image.pbcor.fits") == "target.image.pbcor.fits"
    assert readme.visible("caf\u00e9 \u65e5\u672c.py") == "caf\u00e9 \u65e5\u672c.py"  # UTF-8 as is
    assert readme.visible("a\x1bb\x7fc\u2028d\x85") == "a\\x1bb\\x7fc\\u2028d\\u0085"
    assert readme.visible(os.fsdecode(b"a\\n\xe9")) == "a\\\\n\\xe9"  # no two names look alike
    assert manifest.format_lines([("a b", "0" * 64)]) == f"{'0' * 64}  a b\n"
    assert manifest.format_lines([("a\\b", "0" * 64)]) == f"\\{'0' * 64}  a\\\\b\n"


@pytest.mark.parametrize("line", [
    f"{'0' * 64}  ../outside",
    f"\\{'0' * 64}  ok/..\\nx/../../up",
    f"\\{'0' * 64}  /etc/passwd\\n",
    f"\\{'0' * 64}  bad\\tescape",
    f"\\{'0' * 64}  trailing\\",
    f"{'0' * 63}  short",
])
def test_manifest_reader_still_refuses_unsafe_or_malformed_lines(tmp_path, line):
    (tmp_path / manifest.NAME).write_text(line + "\n")
    with pytest.raises(Exception, match="bad manifest line"):
        manifest.read(tmp_path)


def test_manifest_reader_takes_both_forms(tmp_path):
    sha = "ab" * 32
    (tmp_path / manifest.NAME).write_bytes(
        f"{sha}  plain name\n\\{sha}  a\\nb\\\\c\\rd\n{sha} *binary\n{sha}  back\\slash\n".encode()
        + sha.encode() + b"  caf\xe9\n")
    assert manifest.read(tmp_path) == {"plain name": sha, "a\nb\\c\rd": sha, "binary": sha,
                                       "back\\slash": sha, os.fsdecode(b"caf\xe9"): sha}


def test_journal_keeps_the_names_and_a_rerun_reuses_the_files(toy_pm, src, dst, piscript, header,
                                                              odd):
    _package(toy_pm, src, dst, piscript, header, "copy")
    raw = (dst.parent / (dst.name + ".qa2") / "journal.json").read_bytes()
    assert raw.isascii()
    entries = journal.load(dst).entries
    assert {f"{MEMBER}/{dest}" for dest, _ in odd.values()} <= set(entries)
    again = _package(toy_pm, src, dst, piscript, header, "copy")
    actions = {f.dest: f.action for f in again.files}
    assert {actions[dest] for dest, _ in odd.values()} == {"reused"}


def test_ticket_zip_names_the_files_as_the_readme_does(toy_pm, src, dst, piscript, header, odd):
    _package(toy_pm, src, dst, piscript, header, "copy")
    with zipfile.ZipFile(dst.with_name(dst.name + ".ticket.zip")) as zf:
        names = set(zf.namelist())
        for rel, (dest, shown) in odd.items():
            if dest.startswith("script/"):
                assert f"script/{shown}" in names
                assert zf.read(f"script/{shown}") == content_of(rel)
        assert zf.testzip() is None


@pytest.fixture
def cli_toy(monkeypatch, toy_pm):
    """The CLI with the toy plugin instead of the installed ones."""
    import qa2core.cli

    monkeypatch.setattr(qa2core.cli, "_plugins", lambda: toy_pm)
    return toy_pm


def test_cli_json_is_one_valid_object_with_surrogate_escaped_names(run_qa2, cli_toy, src, dst,
                                                                    piscript, odd):
    r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", "--json")
    assert r.exit_code == 0, r.stderr
    assert "internal error" not in r.stderr
    assert r.stdout.isascii()
    out = json.loads(r.stdout)  # one object, nothing else on stdout
    dests = {f["dest"] for f in out["files"]}
    sources = {f["source"] for f in out["files"]}
    for rel, (dest, _shown) in odd.items():
        assert f"{MEMBER}/{dest}" in dests
        assert os.fsdecode(os.path.join(os.fsencode(src), rel)) in sources
    if odd is NOT_UTF8:
        assert "\\udce9" in r.stdout or "\\udcff" in r.stdout


def test_cli_prints_the_tree_one_line_per_file(run_qa2, cli_toy, src, dst, piscript, odd):
    r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")
    assert r.exit_code == 0, r.stderr
    assert "internal error" not in r.stderr
    lines = r.stdout.splitlines()
    for _dest, shown in odd.values():
        assert any(line.endswith(f"-- {shown}") for line in lines), r.stdout
    for line in r.stderr.splitlines():
        assert line.startswith("qa2: "), line  # a name never breaks a stderr line


def test_cli_errors_naming_such_a_path_stay_one_line(run_qa2, tmp_path):
    missing = tmp_path / os.fsdecode(b"no\nsuch\xe9\\pack")
    for args in (("verify", missing), ("verify", missing, "--json")):
        r = run_qa2(*args)
        assert r.exit_code == 2 and "internal error" not in r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("qa2: error: ")
        assert "no\\nsuch\\xe9\\pack" in r.stderr


def test_tar_keeps_the_bytes_of_every_name(run_qa2, cli_toy, src, dst, piscript, tmp_path, odd):
    r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")
    assert r.exit_code == 0, r.stderr
    r = run_qa2("tar", dst, "--ous-uids", UIDS, "--json")
    assert r.exit_code == 0, r.stderr
    tar_path = tmp_path / "2015.1.00123.S_uid___A001_X87c_X69_001_of_001.tar"
    assert json.loads(r.stdout)["tars"] == [str(tar_path)]
    with tarfile.open(tar_path, encoding="utf-8", errors="surrogateescape") as tar:
        assert not any(m.pax_headers for m in tar.getmembers())  # plain GNU headers, raw bytes
    untar = tmp_path / "untar"
    untar.mkdir()
    subprocess.run(["tar", "-xf", tar_path, "-C", untar], check=True, capture_output=True)
    got = _files(untar / dst.name)
    want = {p.replace(MEMBER.encode(), REAL_MEMBER.encode(), 1): c
            for p, c in _files(dst).items() if p != manifest.NAME.encode()}
    readme_in_tar = f"{REAL_MEMBER}/README".encode()  # its listing names the renamed member
    want[readme_in_tar] = readme.renamed(want[readme_in_tar], MEMBER.rsplit("/", 1)[1],
                                         REAL_MEMBER.rsplit("/", 1)[1])
    assert {p: c for p, c in got.items() if p != manifest.NAME.encode()} == want
    for _rel, (dest, _shown) in odd.items():
        assert os.fsencode(f"{REAL_MEMBER}/{dest}") in got
    run = subprocess.run(["sha256sum", "-c", "--strict", manifest.NAME], cwd=untar / dst.name,
                         capture_output=True)
    assert run.returncode == 0, run.stdout + run.stderr
    shutil.rmtree(untar)
