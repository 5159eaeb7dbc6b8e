"""Faults a reducer meets, injected deterministically into real ``qa2`` processes.

* kill -9 at every rename of the swap (``strace -e inject=rename:signal=SIGKILL:when=N`` for
  N = 1, 2, ... until a run completes), then the next command finds one whole package;
* ENOSPC at every write the run makes (``strace -P <file> -e inject=write:error=ENOSPC``), and
  a real full tmpfs;
* links refused by the file system (``inject=link,linkat:error=EXDEV``), fresh and on a re-run
  that reuses the journal;
* concurrent package+package, package+tar and tar+tar, synchronised by barriers: a process is
  stopped at a known system call (``inject=...:signal=SIGSTOP``: the call is made, then the
  process stops) and the test waits until the kernel reports it stopped, never on a sleep.

docs/reliability.md, "Fault matrix", lists each fault with what qa2 does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from qa2core.testing import tree_state, write_tree

QA2 = Path(sys.executable).with_name("qa2")
PROJECT = "2015.1.00123.S"
MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
MANUAL = {
    "uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "scriptForImaging.py": "# imaging\n",
    "scriptForImagingPrep.py": "# prep\n",
    "img/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "casa-20160101-000000.log": "log\n",
}
RENAMES = "rename,renameat,renameat2"
WRITES = "write,pwrite64,writev,pwritev,pwritev2"
# No traceback allowed, no bytecode written by the run (its renames would count in the sweep).
ENV = {k: v for k, v in os.environ.items() if k != "QA2_DEBUG"} | {"PYTHONDONTWRITEBYTECODE": "1"}


def _strace_problem() -> str | None:
    strace = shutil.which("strace")
    if strace is None:
        return ("strace is not installed: the fault-injection tests need it "
                "(apt-get install strace; `make bootstrap` installs it)")
    r = subprocess.run([strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"strace cannot trace a process here (ptrace not allowed?): {r.stderr.strip()}"
    return None


STRACE_PROBLEM = _strace_problem()
needs_strace = pytest.mark.skipif(STRACE_PROBLEM is not None, reason=STRACE_PROBLEM or "")


# ---------------------------------------------------------------------------- running qa2


def _command(args, strace) -> list[str]:
    cmd = [str(QA2), *map(str, args)]
    if strace:
        cmd = [shutil.which("strace"), "-f", "-qq", "-o", "/dev/null", *strace, "--", *cmd]
    return cmd


def qa2(*args, strace=(), check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(_command(args, strace), capture_output=True, text=True, env=ENV,
                       stdin=subprocess.DEVNULL, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def killed(r: subprocess.CompletedProcess) -> bool:
    return r.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)


def errors(r: subprocess.CompletedProcess) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("qa2: error:")]


def stop_at(syscalls: str, path: Path | None = None, when: int = 1) -> list[str]:
    """strace options that stop the run (SIGSTOP) right after its ``when``-th call of one of
    ``syscalls`` (on ``path``, when given): a barrier at a known point of the run."""
    only = ["-P", str(path)] if path is not None else []
    return [*only, "-e", f"trace={syscalls}",
            "-e", f"inject={syscalls}:signal=SIGSTOP:when={when}"]


class Stopped:
    """A ``qa2`` process started under strace, to be held at a barrier and released."""

    def __init__(self, *args, strace) -> None:
        self.proc = subprocess.Popen(_command(args, strace), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=ENV,
                                     stdin=subprocess.DEVNULL)
        self.pid = 0

    def wait_stopped(self, timeout: float = 60) -> Stopped:
        """Block until the kernel reports every thread of the run stopped (or fail if the run
        ended without reaching the barrier). Polls /proc: the condition, not the time, decides."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                _out, err = self.proc.communicate()
                raise AssertionError(f"ended ({self.proc.returncode}) before the barrier:\n{err}")
            if not self.pid:
                try:
                    kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
                    self.pid = int(kids.split()[0]) if kids.split() else 0
                except (OSError, ValueError):
                    self.pid = 0
            if self.pid and _all_stopped(self.pid):
                return self
            assert time.monotonic() < deadline, "the run never reached the barrier"
            time.sleep(0.002)

    def release(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def finish(self) -> subprocess.CompletedProcess:
        out, err = self.proc.communicate(timeout=120)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def _all_stopped(pid: int) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        states = [Path(f"/proc/{pid}/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[0]
                  for t in tasks]
    except (OSError, IndexError):
        return False
    return bool(states) and all(s in "tT" for s in states)


# ---------------------------------------------------------------------------- package states


def zip_content(path: Path) -> dict[str, bytes] | None:
    """Every member of a ticket zip (after checking each CRC), or None when there is none."""
    if not path.exists():
        return None
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None, f"{path}: corrupt member"
        return {name: zf.read(name) for name in zf.namelist()}


def journal_view(pack: Path) -> dict | None:
    path = Path(f"{pack}.qa2/journal.json")
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return {"run": raw["run"], "entries": {k: (v["sha256"], v["size"])
                                           for k, v in raw["entries"].items()}}


def snapshot(pack: Path) -> dict:
    """What a reducer finds: the tree byte for byte (tree_state), the ticket, the journal."""
    return {"tree": tree_state(pack), "ticket": zip_content(Path(f"{pack}.ticket.zip")),
            "journal": journal_view(pack)}


def loose(state: dict) -> dict:
    """A state without the modification times of files (a new build has new ones)."""
    tree = {k: (v[:3] + v[4:] if v[0] == "f" else v) for k, v in state["tree"].items()}
    return {**state, "tree": tree}


def verify_ok(pack: Path) -> bool:
    r = qa2("verify", pack, "--json", check=False)
    return r.returncode == 0 and json.loads(r.stdout)["ok"]


def leftovers(pack: Path) -> list[str]:
    partial = Path(f"{pack}.qa2/partial")
    return sorted(str(p) for p in partial.rglob("*")) if partial.exists() else []


def tar_checks_out(tar: Path, into: Path) -> None:
    """The tar's own sums match, and untarred, ``sha256sum -c`` passes on the manifest."""
    for tool, suffix in (("sha256sum", ".sha256"), ("md5sum", ".md5sum")):
        r = subprocess.run([tool, "-c", tar.name + suffix], cwd=tar.parent, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    into.mkdir()
    with tarfile.open(tar) as tf:
        tf.extractall(into, filter="data")
    (top,) = into.iterdir()
    r = subprocess.run(["sha256sum", "--strict", "-c", "manifest-sha256.txt"], cwd=top,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


class Scene:
    """A reduction, a base directory holding a package state, and fresh copies of it.

    ``kind``: ``replace`` (a previous package exists, the source changed since), ``fresh`` (no
    package yet), ``append`` (a previous package; the run adds a group)."""

    def __init__(self, tmp_path: Path, piscript: Path, kind: str, mode: str = "copy") -> None:
        self.tmp, self.piscript, self.kind, self.mode = tmp_path, piscript, kind, mode
        self.src = write_tree(tmp_path / "red", MANUAL)
        self.base = tmp_path / "base"
        self.base.mkdir()
        if kind != "fresh":
            qa2(*self.args(self.base, append=False))
            (self.src / "scriptForImaging.py").write_text("# imaging, second version\n")
            later = time.time_ns() + 10**9
            for path in self.src.rglob("*"):  # everything looks new: the run redoes it all
                os.utime(path, ns=(later, later))
        self.source = tree_state(self.src)
        self.old = snapshot(self.base / PROJECT)
        ref = self.copy("reference")
        qa2(*self.args(ref))
        self.new = snapshot(ref / PROJECT)
        assert loose(self.new) != loose(self.old)
        self.copies = 0

    def args(self, where: Path, append: bool = True) -> list:
        extra = ["--append", "group"] if append and self.kind == "append" else []
        return ["package", self.src, where / PROJECT, "--piscript", self.piscript,
                "--mode", self.mode, "--jobs", "2", *extra]

    def copy(self, name: str | None = None, of: Path | None = None) -> Path:
        if name is None:
            self.copies += 1
            name = f"run{self.copies}"
        where = self.tmp / name
        shutil.copytree(of or self.base, where, symlinks=True)
        return where

    def is_old(self, state: dict) -> bool:
        return state == self.old

    def is_new(self, state: dict) -> bool:
        return loose(state) == loose(self.new)

    def unchanged_source(self) -> None:
        assert tree_state(self.src) == self.source, "the source changed"


@pytest.fixture
def scene(tmp_path, piscript):
    made = []

    def make(kind: str, mode: str = "copy") -> Scene:
        made.append(Scene(tmp_path, piscript, kind, mode))
        return made[-1]

    yield make
    for s in made:
        s.unchanged_source()


# ---------------------------------------------------------------------------- kill -9


@needs_strace
@pytest.mark.parametrize("kind", ["replace", "fresh", "append"])
def test_kill_9_at_every_rename_leaves_one_whole_package(scene, kind):
    s = scene(kind)
    kills = 0
    for n in range(1, 30):
        work = s.copy()
        pack = work / PROJECT
        r = qa2(*s.args(work), strace=["-e", f"trace={RENAMES}",
                                        "-e", f"inject={RENAMES}:signal=SIGKILL:when={n}"],
                check=False)
        if r.returncode == 0:  # no rename left to kill at: the run completed
            assert s.is_new(snapshot(pack)) and not leftovers(pack)
            break
        assert killed(r), r.stderr
        kills += 1
        s.unchanged_source()
        # Right after the kill: nothing of the previous package is lost (it is in place, or
        # moved aside whole), and verify never passes a tree that is neither state.
        unit = "sg_ouss_id/group_ouss_2_id" if kind == "append" else "sg_ouss_id"
        aside = Path(f"{pack}.qa2/partial/previous")
        if kind == "replace" and not aside.exists():
            assert (pack / unit).is_dir()
        if kind != "fresh":
            kept = tree_state(pack / "sg_ouss_id/group_ouss_id")
            assert kept or aside.exists()
        raw = snapshot(pack)  # the ticket zip, if any, is a valid zip (old or new)
        if verify_ok(pack):  # before any recovery: the tree alone is whole, or verify fails
            tree = {"tree": raw["tree"]}
            assert tree == {"tree": s.old["tree"]} or loose(tree) == {"tree": loose(s.new)["tree"]}, \
                f"verify passed a mixed tree after kill {n}"

        # The next command that takes the lock finds the previous package or the new one.
        other = s.copy(of=work)
        tar = qa2("tar", other / PROJECT, "--out", other, check=False)
        after = snapshot(other / PROJECT)
        assert s.is_old(after) or s.is_new(after), f"kill {n}: a mix after recovery"
        assert not leftovers(other / PROJECT)
        if after["tree"]:
            assert tar.returncode == 0, tar.stderr
            (made,) = other.glob("*.tar")
            tar_checks_out(made, other / "untar")
        else:  # a first package killed before its unit moved in: there is none
            assert tar.returncode == 1 and "not a qa2 package" in tar.stderr
        # ... and the next package run completes the new one.
        again = qa2(*s.args(work), check=False)
        assert again.returncode == 0, again.stderr
        assert "qa2: note:" in again.stderr
        assert s.is_new(snapshot(pack)) and verify_ok(pack) and not leftovers(pack)
    else:
        pytest.fail("the run never completed")
    assert kills == {"replace": 5, "fresh": 4, "append": 4}[kind]


# ---------------------------------------------------------------------------- ENOSPC


def _writes(s: Scene) -> list[tuple[str, int]]:
    """(file relative to the run's directory, n): the n-th write to each file the run writes,
    first and last of each, from a traced run."""
    work = s.copy("traced")
    log = s.tmp / "writes.log"
    subprocess.run([shutil.which("strace"), "-f", "-qq", "-y", "-o", str(log), "-e",
                    f"trace={WRITES}", "--", str(QA2), *map(str, s.args(work))],
                   capture_output=True, env=ENV, check=True)
    count: Counter[str] = Counter()
    prefix = f"{work}/"
    for line in log.read_text().splitlines():
        m = re.match(r"\d+ +(?:p?writev?\d*|pwrite64)\(\d+<([^>]*)>", line)
        if m and m.group(1).startswith(prefix):
            count[m.group(1)[len(prefix):]] += 1
    assert count, "no write traced"
    return sorted({(path, k) for path, n in count.items() for k in (1, n)})


@needs_strace
@pytest.mark.parametrize("kind", ["replace", "fresh"])
def test_enospc_at_every_write_keeps_the_previous_package(scene, kind):
    s = scene(kind)
    points = _writes(s)
    assert any(p.endswith("/README") for p, _ in points)
    assert any(p.endswith(".qa2/partial/swap") for p, _ in points)
    for rel, n in points:
        work = s.copy()
        pack = work / PROJECT
        r = qa2(*s.args(work), strace=["-P", str(work / rel), "-e", f"trace={WRITES}",
                                        "-e", f"inject={WRITES}:error=ENOSPC:when={n}"],
                check=False)
        what = f"ENOSPC at write {n} of {rel}"
        assert r.returncode == 1, f"{what}: {r.returncode}\n{r.stderr}"
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, what
        (line,) = errors(r)
        assert "no space left" in line.lower() and str(work) in line, f"{what}: {line}"
        assert s.is_old(snapshot(pack)), what
        assert not Path(f"{pack}.qa2/partial").exists(), f"{what}: {leftovers(pack)}"
        if kind == "fresh":
            assert not pack.exists() and not Path(f"{pack}.ticket.zip").exists(), what
        else:
            assert verify_ok(pack), what
        s.unchanged_source()


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


def test_disk_full_removes_what_the_run_wrote(tmpfs, tmp_path, piscript):
    disk = tmpfs("small", "3m")
    src = write_tree(tmp_path / "red", MANUAL)
    dst = disk / PROJECT
    qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")
    before = snapshot(dst)
    (src / "img/huge.image.pbcor.fits").write_bytes(os.urandom(5 << 20))
    r = qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = errors(r)
    assert "no space left" in line.lower() and str(disk) in line
    assert snapshot(dst) == before and verify_ok(dst) and not leftovers(dst)
    fresh = disk / "2016.1.00001.S"
    r = qa2("package", src, fresh, "--piscript", piscript, "--mode", "copy", check=False)
    assert r.returncode == 1 and not fresh.exists() and not Path(f"{fresh}.ticket.zip").exists()
    assert not Path(f"{fresh}.qa2/partial").exists()


# ---------------------------------------------------------------------------- refused links


def _link_warnings(r) -> int:
    return sum("hard links refused" in w for w in json.loads(r.stdout)["warnings"])


@needs_strace
@pytest.mark.parametrize("errno_name", ["EXDEV", "EPERM", "EMLINK"])
def test_refused_links_become_copies_with_one_warning(scene, errno_name):
    s = scene("fresh", mode="hard")
    work = s.copy()
    refuse = ["-e", "trace=link,linkat", "-e", f"inject=link,linkat:error={errno_name}"]
    r = qa2(*s.args(work), "--json", strace=refuse)
    assert _link_warnings(r) == 1
    actions = {f["dest"]: f["action"] for f in json.loads(r.stdout)["files"]}
    assert actions["script/scriptForImaging.py"] == "copy"
    assert s.is_new(snapshot(work / PROJECT)) and verify_ok(work / PROJECT)
    # A hard-mode re-run reuses the journal: its links to the previous files are refused too.
    r = qa2(*s.args(work), "--json", strace=refuse)
    assert _link_warnings(r) == 1 and verify_ok(work / PROJECT)


@needs_strace
def test_a_copy_rerun_that_reuses_the_journal_copies_when_links_are_refused(scene):
    s = scene("replace")
    (s.src / "scriptForImaging.py").write_text("# imaging\n")  # back as it was: all reusable
    for path in s.src.rglob("*"):
        os.utime(path, ns=(s.old["tree"][f"{MEMBER}/README"][3],) * 2)
    s.source = tree_state(s.src)
    work = s.copy()
    qa2(*s.args(work))  # the files now match the journal
    before = tree_state(work / PROJECT)
    r = qa2(*s.args(work), "--json",
            strace=["-e", "trace=link,linkat", "-e", "inject=link,linkat:error=EXDEV"])
    assert {f["action"] for f in json.loads(r.stdout)["files"]} == {"reused", "readme"}
    assert _link_warnings(r) == 1 and verify_ok(work / PROJECT)
    after = tree_state(work / PROJECT)
    assert {k: v for k, v in after.items() if not k.endswith("README")} == \
        {k: v for k, v in before.items() if not k.endswith("README")}


@needs_strace
def test_a_link_failing_for_another_reason_fails_the_run_cleanly(scene):
    s = scene("replace", mode="hard")
    work = s.copy()
    r = qa2(*s.args(work), strace=["-e", "trace=link,linkat", "-e", "inject=link,linkat:error=EIO"],
            check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = errors(r)
    assert "Input/output error" in line and str(s.src) in line
    assert s.is_old(snapshot(work / PROJECT)) and not leftovers(work / PROJECT)


# ---------------------------------------------------------------------------- lock races


def after_flock(lock: Path) -> list[str]:
    return stop_at("flock", lock)


@needs_strace
@pytest.mark.parametrize("kind", ["replace", "fresh"])
def test_two_package_runs_at_once_one_refuses_one_completes(scene, kind):
    s = scene(kind)
    work = s.copy()
    pack = work / PROJECT
    lock = Path(f"{pack}.qa2/lock")
    # Both are held right after their flock: whichever came first holds the lock, so the
    # other's flock has already failed, whatever the scheduler does next.
    runs = [Stopped(*s.args(work), strace=after_flock(lock)) for _ in range(2)]
    for run in runs:
        run.wait_stopped()
    for run in runs:
        run.release()
    results = [run.finish() for run in runs]
    assert sorted(r.returncode for r in results) == [0, 1], [r.stderr for r in results]
    loser = next(r for r in results if r.returncode == 1)
    (line,) = errors(loser)
    assert "holds the lock (package pid" in line
    assert s.is_new(snapshot(pack)) and verify_ok(pack) and not leftovers(pack)


@needs_strace
@pytest.mark.parametrize("kind", ["replace", "fresh"])
@pytest.mark.parametrize("where", ["building", "swapping"])
def test_a_run_that_loses_the_lock_removes_nothing(scene, kind, where):
    """The first run is held mid-build (after writing its README) or mid-swap (after its
    first rename); a second package run and a tar both refuse and touch nothing of it."""
    s = scene(kind)
    work = s.copy()
    pack = work / PROJECT
    barrier = (stop_at("write", Path(f"{pack}.qa2/partial/unit/group_ouss_id/member_ouss_id/README"))
               if where == "building" else stop_at(RENAMES))
    first = Stopped(*s.args(work), strace=barrier).wait_stopped()
    during = tree_state(work)
    assert Path(f"{pack}.qa2/partial/unit" if where == "building" else f"{pack}.qa2/partial").exists()
    second = qa2(*s.args(work), check=False)
    tar = qa2("tar", pack, "--out", work, check=False)
    for r in (second, tar):
        assert r.returncode == 1, r.stderr
        (line,) = errors(r)
        assert f"holds the lock (package pid {first.pid}@" in line
    assert tree_state(work) == during, "a refused run changed the tree"
    first.release()
    assert first.finish().returncode == 0
    assert s.is_new(snapshot(pack)) and verify_ok(pack) and not leftovers(pack)


@needs_strace
def test_a_second_run_refuses_while_another_process_holds_the_package(scene):
    """In-process holder: the message names it (pid@host); the tree is untouched."""
    from qa2core.lock import PackLock

    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    with PackLock(pack):
        r = qa2(*s.args(work), check=False)
        assert r.returncode == 1 and f"holds the lock (qa2 pid {os.getpid()}@" in r.stderr
    assert s.is_old(snapshot(pack))
    qa2(*s.args(work))  # free again
    assert s.is_new(snapshot(pack))


# ---------------------------------------------------------------------------- tar races


@needs_strace
def test_package_and_tar_at_once_never_give_a_tar_that_fails_its_sums(scene):
    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    out = work / "out"
    out.mkdir()
    lock = Path(f"{pack}.qa2/lock")
    package = Stopped(*s.args(work), strace=after_flock(lock)).wait_stopped()
    tar = Stopped("tar", pack, "--out", out, strace=after_flock(lock)).wait_stopped()
    package.release()
    tar.release()
    p, t = package.finish(), tar.finish()
    assert sorted([p.returncode, t.returncode]) == [0, 1], (p.stderr, t.stderr)
    if t.returncode == 0:  # the tar got the lock: the package run refused, the tar is the old one
        assert "holds the lock (tar pid" in p.stderr and s.is_old(snapshot(pack))
        (made,) = out.glob("*.tar")
        tar_checks_out(made, work / "untar")
    else:
        assert "holds the lock (package pid" in t.stderr and s.is_new(snapshot(pack))
        assert not list(out.iterdir())
    assert verify_ok(pack)


@needs_strace
def test_a_tar_holding_the_lock_keeps_a_package_run_out(scene):
    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    out = work / "out"
    out.mkdir()
    tar = Stopped("tar", pack, "--out", out, strace=stop_at(WRITES, None, when=3)).wait_stopped()
    assert list(out.glob("*.partial"))
    r = qa2(*s.args(work), check=False)
    assert r.returncode == 1 and f"holds the lock (tar pid {tar.pid}@" in r.stderr
    tar.release()
    assert tar.finish().returncode == 0
    (made,) = out.glob("*.tar")
    tar_checks_out(made, work / "untar")
    assert s.is_old(snapshot(pack))


@needs_strace
def test_two_tars_of_one_package_at_once(scene):
    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    out = work / "out"
    out.mkdir()
    lock = Path(f"{pack}.qa2/lock")
    tars = [Stopped("tar", pack, "--out", out, strace=after_flock(lock)) for _ in range(2)]
    for t in tars:
        t.wait_stopped()
    for t in tars:
        t.release()
    results = [t.finish() for t in tars]
    assert sorted(r.returncode for r in results) == [0, 1]
    assert "holds the lock (tar pid" in next(r.stderr for r in results if r.returncode)
    (made,) = out.glob("*.tar")
    assert not list(out.glob("*.partial"))
    tar_checks_out(made, work / "untar")


def _two_packages(s: Scene, names: tuple[str, str]) -> list[Path]:
    packs = []
    for i, name in enumerate(names):
        where = s.tmp / f"p{i}"
        where.mkdir()
        qa2("package", s.src, where / name, "--piscript", s.piscript, "--mode", "copy")
        packs.append(where / name)
    return packs


@needs_strace
def test_two_tars_writing_into_one_directory_keep_to_their_own_files(scene):
    s = scene("fresh")
    out = s.tmp / "out"
    out.mkdir()
    packs = _two_packages(s, (PROJECT, "2016.1.00001.S"))
    # Both held mid-write: two partial files side by side, neither touches the other's.
    tars = [Stopped("tar", p, "--out", out, strace=stop_at(WRITES, None, when=3)) for p in packs]
    for t in tars:
        t.wait_stopped()
    assert len(list(out.glob("*.partial"))) == 2
    for t in tars:
        t.release()
    assert [t.finish().returncode for t in tars] == [0, 0]
    assert not list(out.glob("*.partial"))
    made = sorted(out.glob("*.tar"))
    assert len(made) == 2
    for i, tar in enumerate(made):
        tar_checks_out(tar, s.tmp / f"untar{i}")


@needs_strace
def test_two_tars_of_the_same_name_never_leave_a_tar_beside_the_others_sums(scene):
    """Two packages of one project (two reducers' copies) archived into one directory: the
    tar's name is the same. B is held after its check that the name is free; A publishes its
    tar and is held before writing its sums; B finishes; A finishes. One tar may win; its
    sums must be its own, and the loser must say so."""
    s = scene("fresh")
    out = s.tmp / "out"
    out.mkdir()
    a, b = _two_packages(s, (PROJECT, PROJECT))
    (a / MEMBER / "script/scriptForImaging.py").write_text("# a\n")  # two different packages
    qa2("package", s.src, a, "--piscript", s.piscript, "--mode", "copy")
    late = Stopped("tar", b, "--out", out, strace=stop_at(WRITES, None, when=3)).wait_stopped()
    tar_name = f"{PROJECT}_001_of_001.tar"
    first = Stopped("tar", a, "--out", out,
                    strace=stop_at(f"{RENAMES},link,linkat", out / tar_name)).wait_stopped()
    late.release()
    rb = late.finish()
    first.release()
    ra = first.finish()
    assert 0 in (ra.returncode, rb.returncode), (ra.stderr, rb.stderr)
    for r in (ra, rb):
        if r.returncode:
            (line,) = errors(r)
            assert "exists" in line
    assert not list(out.glob("*.partial"))
    tar_checks_out(out / tar_name, s.tmp / "untar")


@needs_strace
def test_a_partial_tar_left_by_a_kill_does_not_stop_the_next_tar(scene):
    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    out = work / "out"
    out.mkdir()
    r = qa2("tar", pack, "--out", out, check=False,
            strace=["-e", f"trace={WRITES}", "-e", f"inject={WRITES}:signal=SIGKILL:when=3"])
    assert killed(r)
    assert len(list(out.glob("*.partial"))) == 1 and not list(out.glob("*.tar*[!l]"))
    qa2("tar", pack, "--out", out)
    (made,) = out.glob("*.tar")
    tar_checks_out(made, work / "untar")


@needs_strace
@pytest.mark.parametrize("which", ["tar", "sha256"])
def test_enospc_while_writing_a_tar_leaves_no_tar(scene, which):
    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    out = work / "out"
    out.mkdir()
    if which == "tar":
        inject = ["-e", f"trace={WRITES}", "-e", f"inject={WRITES}:error=ENOSPC:when=3"]
    else:
        inject = ["-P", str(out / f"{PROJECT}_001_of_001.tar.sha256"), "-e", f"trace={WRITES}",
                  "-e", f"inject={WRITES}:error=ENOSPC"]
    r = qa2("tar", pack, "--out", out, strace=inject, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = errors(r)
    assert "no space left" in line.lower() and str(work) in line
    assert not list(out.iterdir()), "a failed tar left files"
    qa2("tar", pack, "--out", out)


# ---------------------------------------------------------------------------- special files


def test_special_files_in_the_input_are_refused_unopened(tmp_path, piscript):
    src = write_tree(tmp_path / "red", MANUAL)
    os.mkfifo(src / "casa-20160102-000000.log")
    os.mknod(src / "scriptForImaging2.py", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero
    dst = tmp_path / PROJECT
    r = qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "a FIFO" in r.stderr and "a device node" in r.stderr
    assert not dst.exists() and not Path(f"{dst}.qa2").exists()


def test_special_files_in_a_package_fail_verify_and_tar(tmp_path, piscript):
    src = write_tree(tmp_path / "red", MANUAL)
    dst = tmp_path / PROJECT
    qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")
    log = dst / MEMBER / "log/casa-20160101-000000.log"
    log.unlink()
    os.mkfifo(log)
    script = dst / MEMBER / "script/scriptForImaging.py"
    script.unlink()
    os.mknod(script, stat.S_IFCHR | 0o644, os.makedev(1, 5))
    r = qa2("verify", dst, check=False)
    assert r.returncode == 1 and "a FIFO" in r.stderr and "a device node" in r.stderr
    r = qa2("tar", dst, check=False)
    assert r.returncode == 1 and "refused to archive" in r.stderr
    assert not list(tmp_path.glob("*.tar*"))
