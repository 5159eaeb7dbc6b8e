"""The batch ledger (``JOBS.ledger.jsonl``) and its fingerprints, as a user reads the file and
as a resumed campaign relies on them (`make mutate`; docs/reliability.md, "Mutation testing")."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime

import pytest

from qa2core.batch import ledger as L
from qa2core.errors import Qa2Error


def test_records_are_one_json_line_each_fsynced_and_readable_back(tmp_path):
    path = tmp_path / "jobs.ledger.jsonl"
    led = L.Ledger(path).open()
    led.append("r1", state="campaign", jobs=2)
    led.append("r1", job="a", attempt=1, state="succeeded", time="T0", result={"n": 1})
    led.close()
    assert led.fd is None
    lines = path.read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert list(first)[:3] == ["v", "run", "state"] and first["v"] == 1 and first["run"] == "r1"
    assert datetime.fromisoformat(first["time"]).utcoffset().total_seconds() == 0
    assert len(first["time"].split("T")[1].split("+")[0]) == len("12:34:56.789")
    assert second == {"v": 1, "run": "r1", "job": "a", "attempt": 1, "state": "succeeded",
                      "time": "T0", "result": {"n": 1}}
    assert oct(path.stat().st_mode & 0o777) == oct(0o644 & ~_umask())
    assert L.Ledger(path).records() == [first, second]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_appending_needs_an_open_ledger(tmp_path):
    with pytest.raises(AssertionError, match=r"Ledger\.open\(\) first"):
        L.Ledger(tmp_path / "x.jsonl").append("r", state="campaign")


def test_a_second_campaign_on_one_jobs_file_is_refused_by_name(tmp_path):
    path = tmp_path / "jobs.ledger.jsonl"
    first = L.Ledger(path).open()
    with pytest.raises(Qa2Error) as exc:
        L.Ledger(path).open()
    assert str(exc.value) == (f"{path}: another qa2 batch is running this jobs file; wait for it "
                              "to finish [batch.ledger_locked]")
    first.close()
    L.Ledger(path).open().close()  # free again once the first is done


def test_cut_lines_other_versions_and_non_objects_are_skipped(tmp_path):
    path = tmp_path / "jobs.ledger.jsonl"
    path.write_text('{"v": 1, "run": "r", "job": "a", "state": "succeeded"}\n'
                    '{"v": 2, "run": "r", "job": "b", "state": "succeeded"}\n'
                    '[1, 2]\n'
                    '{"v": 1, "run": "r", "job": "c", "state": "succ')
    assert L.Ledger(path).records() == [{"v": 1, "run": "r", "job": "a", "state": "succeeded"}]
    assert L.Ledger(tmp_path / "none.jsonl").records() == []


def test_last_success_is_the_latest_unless_a_failure_followed(tmp_path):
    path = tmp_path / "jobs.ledger.jsonl"
    recs = [{"job": "a", "state": "succeeded", "n": 1}, {"job": "a", "state": "succeeded", "n": 2},
            {"job": "b", "state": "succeeded", "n": 3}, {"job": "b", "state": "failed"},
            {"job": "c", "state": "failed"}, {"job": "a", "state": "started"},
            {"job": "d", "state": "skipped"}]
    path.write_text("".join(json.dumps({"v": 1, "run": "r", **r}) + "\n" for r in recs))
    last = L.Ledger(path).last_success()
    assert list(last) == ["a"] and last["a"]["n"] == 2


def test_a_fingerprint_changes_with_any_file_and_never_follows_a_link(tmp_path):
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "sub/a").write_text("aaa")
    (root / "b").write_text("b")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/x").write_text("x")
    os.symlink(tmp_path / "outside", root / "link")
    fp = L.fingerprint(str(root))
    assert fp == L.fingerprint(str(root)) and len(fp) == 64
    (tmp_path / "outside/y").write_text("y")  # behind a link: not followed
    assert L.fingerprint(str(root)) == fp
    missing = L.fingerprint(str(tmp_path / "nothing"))
    assert missing != L.fingerprint(str(tmp_path / "nothing2"))  # the root's name counts
    assert L.fingerprint(str(root), str(tmp_path / "nothing")) != fp

    def changed(edit) -> bool:
        before = L.fingerprint(str(root))
        edit()
        return L.fingerprint(str(root)) != before

    st = os.stat(root / "sub/a")
    assert changed(lambda: (root / "sub/a").write_text("bbb") or
                   os.utime(root / "sub/a", ns=(st.st_atime_ns, st.st_mtime_ns)))  # same size
    assert changed(lambda: os.utime(root / "b", ns=(0, 5)))  # the mtime alone
    assert changed(lambda: (root / "sub/new").write_text(""))  # a file added, empty
    assert changed(lambda: (root / "sub/new").unlink())  # and removed
    assert changed(lambda: (root / "sub/a").rename(root / "sub/c"))  # renamed
    assert changed(lambda: (root / "sub/c").rename(root / "c"))  # moved up a directory
    assert changed(lambda: (root / "b").write_text("bb"))  # a size


def test_a_fingerprint_is_the_documented_listing_hashed(tmp_path):
    """Root line, then (relative path, kind, size, mtime_ns) in name order, depth first, a
    directory's size counted as 0: a campaign resumed by another qa2 version must agree."""
    root = tmp_path / "src"
    (root / "d").mkdir(parents=True)
    (root / "d/b").write_text("bb")
    (root / "a").write_text("a")
    os.symlink("a", root / "l")

    def ns(p):
        return os.lstat(p).st_mtime_ns

    want = (f"\0root {root}\n"
            f"\0d\0{0}\0{ns(root)}\n"
            f"a\0f\0{1}\0{ns(root / 'a')}\n"
            f"d\0d\0{0}\0{ns(root / 'd')}\n"
            f"d/b\0f\0{2}\0{ns(root / 'd/b')}\n"
            f"l\0l\0{1}\0{ns(root / 'l')}\n")
    assert L.fingerprint(str(root)) == hashlib.sha256(want.encode()).hexdigest()
    gone = tmp_path / "gone"
    assert L.fingerprint(str(gone)) == hashlib.sha256(f"\0root {gone}\nmissing\n".encode()).hexdigest()
