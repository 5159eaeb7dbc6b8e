"""Faults a reducer meets: kill -9, a full disk, a second file system. Nothing half-built."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa2core.testing import tree_state, write_tree

QA2 = Path(sys.executable).with_name("qa2")
MANUAL = {
    "uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "scriptForImaging.py": "# imaging\n",
    "scriptForImagingPrep.py": "# prep\n",
    "img/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "casa-20160101-000000.log": "log\n",
}


def qa2(*args, check=True):
    r = subprocess.run([QA2, *map(str, args)], capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def verify_ok(dst) -> bool:
    r = qa2("verify", dst, "--json", check=False)
    return r.returncode == 0 and json.loads(r.stdout)["ok"]


@pytest.fixture
def tmpfs(tmp_path):
    """A small real file system; skipped where mounting is not allowed (not root)."""
    mounted = []

    def mount(name: str, size: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                           capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def big_source(tmp_path):
    files = dict(MANUAL)
    files |= {f"x.qa2/plot_{i:04d}.png": b"\x89PNG" + bytes(1024) for i in range(1000)}
    src = write_tree(tmp_path / "reduction", files)
    with open(src / "img/big.image.pbcor.fits", "wb") as fh:
        fh.write(os.urandom(1 << 20) * 60)  # 60 MB: the copy takes long enough to be hit
    return src


@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_kill_9_leaves_the_previous_package_or_a_whole_new_one(big_source, tmp_path, piscript,
                                                                delay):
    dst = tmp_path / "2015.1.00123.S"
    args = ["package", big_source, dst, "--piscript", piscript, "--mode", "copy"]
    qa2(*args)
    before = tree_state(dst / "sg_ouss_id")
    source_before = tree_state(big_source)
    for path in big_source.rglob("*"):  # everything looks new: the re-run must redo it all
        os.utime(path)
    source_before = tree_state(big_source)
    proc = subprocess.Popen([QA2, *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (dst / ".qa2-partial").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tree_state(big_source) == source_before
    # Right after the kill: the previous package, or (if the run got that far) a whole new one.
    if (dst / "sg_ouss_id").exists() and tree_state(dst / "sg_ouss_id") != before:
        assert verify_ok(dst)
    # The next run recovers (stale lock, partial directory) and finishes.
    r = qa2(*args)
    assert not (dst / ".qa2-partial").exists() and not (dst / ".qa2.lock").exists()
    assert verify_ok(dst), r.stderr


def test_disk_full_removes_what_the_run_wrote(tmpfs, tmp_path, piscript):
    disk = tmpfs("small", "3m")
    src = write_tree(tmp_path / "red", MANUAL)
    dst = disk / "2015.1.00123.S"
    qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")
    before = tree_state(dst)
    zip_before = Path(f"{dst}.ticket.zip").read_bytes()
    (src / "img/huge.image.pbcor.fits").write_bytes(os.urandom(5 << 20))
    r = qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", check=False)
    assert r.returncode == 1 and "no space left" in r.stderr and "Traceback" not in r.stderr
    assert tree_state(dst) == before and verify_ok(dst)
    assert Path(f"{dst}.ticket.zip").read_bytes() == zip_before
    fresh = disk / "2016.1.00001.S"
    r = qa2("package", src, fresh, "--piscript", piscript, "--mode", "copy", check=False)
    assert r.returncode == 1 and not fresh.exists() and not Path(f"{fresh}.ticket.zip").exists()


def test_hard_links_across_file_systems_fall_back_to_copies(tmpfs, tmp_path, piscript):
    src = write_tree(tmpfs("other", "32m") / "red", MANUAL)
    dst = tmp_path / "2015.1.00123.S"
    r = qa2("package", src, dst, "--piscript", piscript, "--mode", "hard", "--json")
    out = json.loads(r.stdout)
    assert sum("hard links refused" in w for w in out["warnings"]) == 1
    script = dst / out["member"] / "script/scriptForImaging.py"
    assert script.read_bytes() == (src / "scriptForImaging.py").read_bytes()
    from_tmpfs = [f for f in out["files"] if str(f["source"]).startswith(str(src))]
    assert {f["action"] for f in from_tmpfs if f["dest"].endswith(".py")} == {"copy"}
    assert verify_ok(dst)


def test_a_second_run_refuses_while_another_process_holds_the_package(tmp_path, piscript):
    from qa2core.lock import PackLock

    src = write_tree(tmp_path / "red", MANUAL)
    dst = tmp_path / "2015.1.00123.S"
    qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")
    before = tree_state(dst)
    with PackLock(dst):  # this test process is the live holder
        r = qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", check=False)
        assert r.returncode == 1 and f"holds the lock (qa2 pid {os.getpid()}@" in r.stderr
    assert tree_state(dst) == before
    qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")  # free again
