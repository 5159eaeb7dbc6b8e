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


def test_each_damaged_line_is_one_warning_naming_its_line_and_the_rest_are_read(tmp_path):
    path = tmp_path / "jobs.ledger.jsonl"
    good = {"v": 1, "run": "r", "job": "z", "state": "succeeded", "result": {"n": 1}}
    path.write_bytes(b"\n".join([
        b'{"v": 1, "run": "r", "job": "a", "state": "succ',     # 1: cut short
        b"",                                                   # 2: blank: skipped silently
        b'{"v": 1, "job": "\xff"}',                            # 3: not UTF-8
        b"[1, 2]",                                             # 4
        b'{"v": 1, "run": "r", "state": "started"}',           # 5: no job
        b'{"v": 1, "run": "r", "job": 7, "state": "failed"}',  # 6: job not a string
        b'{"v": 1, "run": "r", "job": "b", "state": "failed", "result": [1]}',  # 7
        b'{"v": 1, "run": "r", "state": "campaign", "result": [1]}',  # 8: not a job record: kept
        json.dumps(good).encode(),                             # 9
    ]) + b"\n")
    led = L.Ledger(path)
    records = led.records()
    assert records == [{"v": 1, "run": "r", "state": "campaign", "result": [1]}, good]
    assert led.warnings == [
        f"{path}:1: not a JSON record (cut short?); line skipped",
        f"{path}:3: not UTF-8; line skipped",
        f"{path}:4: not a JSON object; line skipped",
        f"{path}:5: a 'started' record without a job name (a string); line skipped",
        f"{path}:6: a 'failed' record without a job name (a string); line skipped",
        f"{path}:7: its result is not an object; line skipped",
    ]
    assert L.Ledger(path).last_success() == {"z": good}


def test_a_record_after_a_cut_line_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / "jobs.ledger.jsonl"
    path.write_bytes(b'{"v": 1, "run": "r", "job": "a", "state": "succ')  # a crash mid-write
    led = L.Ledger(path).open()
    led.append("r2", job="b\u00e9", state="succeeded", time="T", result={"when": datetime(2026, 1, 2)})
    led.append("r2", job="c", state="skipped", time="T")
    led.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b'{"v": 1, "run": "r", "job": "a", "state": "succ' and lines[-1] == b""
    assert lines[1] == (b'{"v": 1, "run": "r2", "job": "b\\u00e9", "state": "succeeded", '
                        b'"time": "T", "result": {"when": "2026-01-02 00:00:00"}}')
    assert json.loads(lines[2]) == {"v": 1, "run": "r2", "job": "c", "state": "skipped", "time": "T"}
    assert len(lines) == 4
    # an intact ledger gets no blank line between records
    path.write_bytes(lines[2] + b"\n")
    led = L.Ledger(path).open()
    led.append("r3", job="d", state="skipped", time="T")
    led.close()
    assert path.read_bytes() == lines[2] + b'\n{"v": 1, "run": "r3", "job": "d", "state": "skipped", ' \
        b'"time": "T"}\n'


def test_a_fingerprint_takes_any_file_name_and_every_root_after_a_missing_one(tmp_path):
    raw = os.fsencode(tmp_path) + b"/r\xff"  # names are bytes on Linux: not always UTF-8
    os.makedirs(raw + b"/d\xfe")
    open(raw + b"/d\xfe/x\xff.fits", "wb").close()
    root = os.fsdecode(raw)
    before = L.fingerprint(str(tmp_path / "missing"), root)
    assert before == L.fingerprint(str(tmp_path / "missing"), root)
    with open(raw + b"/d\xfe/x\xff.fits", "wb") as fh:
        fh.write(b"x")
    assert L.fingerprint(str(tmp_path / "missing"), root) != before  # not only the first root
