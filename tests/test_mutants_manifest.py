"""The manifest where `make mutate` found no test reaching it (docs/reliability.md, "Mutation
testing"): :func:`manifest.write_atomic`, and the hashing of a package that lost its manifest
when a member is appended to it."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.writing import manifest

UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
UIDS2 = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X70"


def test_write_atomic_writes_the_names_bytes_and_leaves_no_temporary(tmp_path):
    target = tmp_path / manifest.NAME
    target.write_text("old\n")
    text = manifest.format_lines([("a\nb", "0" * 64), ("caf\udce9", "1" * 64)])
    manifest.write_atomic(target, text)
    assert target.read_bytes() == b"\\" + b"0" * 64 + b"  a\\nb\n" + b"1" * 64 + b"  caf\xe9\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [manifest.NAME]


def test_appending_to_a_package_that_lost_its_manifest_hashes_what_is_there(
        toy_pm, toy_tree, tmp_path, piscript, header):
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "2015.1.00123.S"
    engine.package(toy_tree, dst, piscript=piscript, plugins=toy_pm, readme_path=header,
                   mode="copy", ous_uids=UIDS)
    before = manifest.read(dst)
    (dst / manifest.NAME).unlink()
    engine.package(toy_tree, dst, piscript=piscript, plugins=toy_pm, readme_path=header,
                   mode="copy", ous_uids=UIDS2, append="member")
    after = manifest.read(dst)
    assert {k: v for k, v in after.items() if "X69" in k} == before
    assert len(after) == 2 * len(before)
    for rel, sha in after.items():
        assert hashlib.sha256((dst / rel).read_bytes()).hexdigest() == sha
    subprocess.run(["sha256sum", "-c", "--quiet", manifest.NAME], cwd=dst, check=True)
    assert verify(dst, plugins=toy_pm).ok
    assert Path(dst / manifest.NAME).is_file()
