"""Faults a reducer meets, injected deterministically into real ``qa2`` processes.

* kill -9 at every rename of the swap (``strace -e inject=rename:signal=SIGKILL:when=N`` for
  N = 1, 2, ... until a run completes), then the next command finds one whole package;
* ENOSPC at every write the run makes (``strace -P <file> -e inject=write:error=ENOSPC:when=N``
  for each file it writes), and a real tmpfs filled page by page;
* links refused by the file system (``inject=link,linkat:error=EXDEV``), fresh and on a re-run
  that reuses the journal;
* concurrent package+package, package+tar and tar+tar, synchronised by barriers: strace stops a
  run at a known system call (``inject=...:signal=SIGTSTP``: the call is made, then the run
  stops) and tells the test through a FIFO; the test then acts and releases the run. No sleeps,
  no reruns: a barrier the run passes without stopping fails the test (see :class:`Traced`).

docs/reliability.md, "Fault matrix", lists each fault with what qa2 does.
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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


# Error injection: ``strace --seccomp-bpf -f qa2 ...`` (only the traced calls stop the run, so a
# traced run costs ~0.1 s more, not ~0.6 s). Signal injection cannot run that way: strace 6.1
# drops an injected signal under seccomp-bpf (it restarts the process from an event stop, where
# the kernel ignores a signal); see :class:`Traced`.
STRACE_OPTIONS = ["-f", "--seccomp-bpf", "-qq", "-o", "/dev/null"]


def _strace_problem() -> str | None:
    strace = shutil.which("strace")
    if strace is None:
        return ("strace is not installed: the fault-injection tests need it "
                "(apt-get install strace; `make bootstrap` installs it)")
    r = subprocess.run([strace, *STRACE_OPTIONS, "-e", "trace=none", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"strace cannot trace a process here (ptrace not allowed?): {r.stderr.strip()}"
    return None


STRACE_PROBLEM = _strace_problem()
needs_strace = pytest.mark.skipif(STRACE_PROBLEM is not None, reason=STRACE_PROBLEM or "")


# ---------------------------------------------------------------------------- running qa2


def qa2(*args, strace=(), check=True) -> subprocess.CompletedProcess:
    """The ``qa2`` command; under ``strace [strace options]`` (error injection) when given."""
    cmd = [str(QA2), *map(str, args)]
    if strace:
        cmd = [shutil.which("strace"), *STRACE_OPTIONS, *strace, "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, stdin=subprocess.DEVNULL,
                       timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def setup_qa2(*args) -> None:
    """qa2 in this process (typer's runner, ~0.07 s instead of ~0.3 s for a new interpreter), to
    set up the states the faults are injected into; never for a run under test, nor in a
    thread (the runner swaps sys.stdout)."""
    from typer.testing import CliRunner

    from qa2core.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.stderr


def in_parallel(work, items) -> list:
    """``work(item)`` for each item, two at a time: each runs its own processes in its own
    directory, so the sweeps take half the time on two cores."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(work, items))


def killed(r: subprocess.CompletedProcess) -> bool:
    return r.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)


def errors(r: subprocess.CompletedProcess) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("qa2: error:")]


def stop_at(syscalls: str, path: Path | None = None, when: int = 1) -> list[str]:
    """strace options that stop the run (SIGTSTP) right after its ``when``-th call of one of
    ``syscalls`` (on ``path``, when given): a barrier at a known point of the run."""
    only = ["-P", str(path)] if path is not None else []
    return [*only, "-e", f"trace={syscalls}",
            "-e", f"inject={syscalls}:signal=SIGTSTP:when={when}"]


def kill_at(syscalls: str, when: int) -> list[str]:
    """strace options that kill the run (SIGKILL) on entering its ``when``-th call of one of
    ``syscalls``: the kernel skips the call, the process dies first."""
    return ["-e", f"trace={syscalls}", "-e", f"inject={syscalls}:signal=SIGKILL:when={when}"]


# The qa2 command's own entry point, held (SIGSTOP) once Python and the plugins are loaded.
# It first makes a process group of its own: the barriers' SIGTSTP must stop it wherever pytest
# runs (see Traced).
LAUNCHER = """
import os, signal, sys
os.setpgid(0, 0)
# A blocked or ignored SIGTSTP is inherited across exec (pytest's process may have it so once a
# library such as casatools has run in it): the barriers need the default, unblocked.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTSTP, signal.SIGCONT})
signal.signal(signal.SIGTSTP, signal.SIG_DFL)
from qa2core import cli, engine
from qa2core.writing import archive, build
from qa2core.checks import verify
from qa2core.hooks.manager import get_plugin_manager
get_plugin_manager()
os.kill(os.getpid(), signal.SIGSTOP)
cli.main(sys.argv[1:])
"""


class Traced:
    """``qa2 ARGS`` with strace injecting faults or barriers (``strace -f -p``).

    The run is the qa2 command's entry point (``qa2core.cli.main``) in a process of its own;
    strace attaches once the interpreter has started, so the ~4000 system calls of start-up are
    not traced (that would cost 0.5 s a run) and injection counts start with the run itself.
    Attaching is a handshake: the process waits stopped until strace says it is attached.

    A barrier: strace stops the run with SIGTSTP at a known call and writes ``--- stopped by
    SIGTSTP ---`` to its trace, a FIFO; :meth:`wait_stopped` blocks on that FIFO (select with a
    timeout, watching for the run ending first), never on a sleep; :meth:`release` resumes.

    Why the run has a process group of its own (``os.setpgid(0, 0)`` in LAUNCHER): Linux
    discards a SIGTSTP (as SIGTTIN, SIGTTOU; never SIGSTOP) sent to a process whose process
    group is orphaned, i.e. no member has a parent in another group of the same session. A
    detached pytest (CI: ``bash .ci/run`` without a terminal, ``setsid make test < /dev/null``)
    is often in such a group; a run in pytest's group then never stopped at a barrier and ended
    (the likely cause of the "barrier missed on a fresh clone's first run" once seen; under
    ``setsid``, 12 of the 34 tests missed theirs every time). In a group of its own, the
    run's parent (pytest) is in another group of the same session, so the group is never
    orphaned, however pytest was started. ``start_new_session`` would not do: a new session's
    group always is orphaned (its parent is in another session). Nor ``signal=SIGSTOP`` as the
    barrier: the launcher's own hand-shake stop is a SIGSTOP, which strace reports on attaching
    as ``--- stopped by SIGSTOP ---`` too, so the barrier's mark would be ambiguous. The
    launcher also unblocks SIGTSTP and restores its default action. So a run that ends before
    its barrier is a failure of the test (a call it no longer makes, a count that moved), never
    a skip nor a rerun."""

    def __init__(self, *args, strace: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=ENV, stdin=subprocess.DEVNULL)
        _STARTED.append(self.proc)
        self.pid = self.proc.pid
        _wait_until(lambda: _state(self.pid) == "T", self.proc, "the run never got ready")
        self.options = strace
        self.dir = Path(tempfile.mkdtemp(prefix="qa2-trace-"))
        _MADE.append(self.dir)
        fifo = self.dir / "trace"
        os.mkfifo(fifo)
        self.strace = subprocess.Popen(
            [shutil.which("strace"), "-f", "-p", str(self.pid), "-o", str(fifo), *strace],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _STARTED.append(self.strace)
        self.trace = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        said = self.strace.stderr.readline()
        assert "attached" in said, said
        assert os.getpgid(self.pid) == self.pid, "the run is not in a process group of its own"
        self.seen = b""
        os.kill(self.pid, signal.SIGCONT)

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.trace], [], [], timeout)
        if ready:
            self.seen += os.read(self.trace, 65536)

    def wait_stopped(self, timeout: float = 60) -> Traced:
        deadline = time.monotonic() + timeout
        while b"--- stopped by SIGTSTP ---" not in self.seen:
            if self.proc.poll() is not None:
                _, err = self.proc.communicate()
                self._read(0)
                pytest.fail(
                    f"strace barrier missed: the run ended (exit {self.proc.returncode}) without "
                    f"stopping at its barrier (strace {' '.join(self.options)}): it no "
                    "longer makes that call, or makes it fewer times; or SIGTSTP did not stop it."
                    f"\nrun's stderr (end):\n{err[-2000:]}"
                    f"\ntrace (end):\n{self.seen[-2000:].decode(errors='replace')}")
            assert time.monotonic() < deadline, "the run never reached the barrier"
            self._read(0.5)
        # Every thread joins the group stop (idle pool threads too): wait for the last one.
        _wait_until(lambda: _all_stopped(self.pid), self.proc, "the run never stopped whole")
        return self

    def release(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def finish(self) -> subprocess.CompletedProcess:
        while self.proc.poll() is None:  # keep the FIFO drained: strace never blocks on it
            self._read(0.05)
        out, err = self.proc.communicate(timeout=120)
        self.strace.communicate(timeout=60)
        os.close(self.trace)
        shutil.rmtree(self.dir)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


_STARTED: list[subprocess.Popen] = []  # every run and strace a test started, ended after it
_MADE: list[Path] = []  # the FIFOs' directories


@pytest.fixture(autouse=True)
def _end_what_a_test_started():
    """A failed barrier test may leave its runs stopped: end them (only those it started)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    while _MADE:
        shutil.rmtree(_MADE.pop(), ignore_errors=True)


def traced(*args, strace: list[str]) -> subprocess.CompletedProcess:
    return Traced(*args, strace=strace).finish()


def _state(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Poll a condition the kernel reports (/proc), failing if the process ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"{what}: ended ({proc.returncode}): {proc.communicate()[1]}"
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def _all_stopped(pid: int) -> bool:
    try:
        states = [_state(f"{pid}/task/{task}") for task in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return False
    return bool(states) and all(s == "t" for s in states)


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


_VERIFYING = threading.Lock()  # in-process verify and tar, one at a time


@functools.cache
def _plugins():
    from qa2core.hooks.manager import get_plugin_manager

    return get_plugin_manager()


def tar_here(pack: Path, out: Path) -> Path | Exception:
    """``qa2 tar PACK --out OUT`` in this process (any thread): the tar, or the refusal."""
    from qa2core.errors import Qa2Error
    from qa2core.writing.archive import make_tars

    try:
        with _VERIFYING:
            (made,) = make_tars(pack, out_dir=out, plugins=_plugins()).tars
    except Qa2Error as exc:
        return exc
    return Path(made)


def verify_ok(pack: Path) -> bool:
    """``qa2 verify`` (in this process: the sweeps call it hundreds of times) passes, and not
    as a rehearsal: every package here is a real one, so "no manifest" (a fake package, a
    WARN) is a failure too."""
    from qa2core.checks.verify import verify

    try:
        with _VERIFYING:  # one at a time: the sweeps' threads share the plugin manager
            report = verify(pack, plugins=_plugins())
    except Exception:  # not a package at all, or no PACKPATH
        return False
    return report.ok and not any(f.rule == "package.fake" for f in report.findings)


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
    subprocess.run(["tar", "-xf", tar, "-C", into], check=True)
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
            setup_qa2(*self.args(self.base, append=False))
            (self.src / "scriptForImaging.py").write_text("# imaging, second version\n")
            later = time.time_ns() + 10**9
            for path in [*self.src.rglob("*"), piscript]:  # all looks new: the run redoes it all
                os.utime(path, ns=(later, later))
        self.source = tree_state(self.src)
        self.old = snapshot(self.base / PROJECT)
        ref = self.copy("reference")
        setup_qa2(*self.args(ref))
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
    old_unit = {k.removeprefix("sg_ouss_id/"): v for k, v in s.old["tree"].items()
                if k.startswith("sg_ouss_id/")}

    def one_kill(n: int) -> str:
        work = s.copy(f"kill{n}")
        pack = work / PROJECT
        r = traced(*s.args(work), strace=kill_at(RENAMES, n))
        if r.returncode == 0:  # no N-th rename: the run completed
            assert s.is_new(snapshot(pack)) and not leftovers(pack)
            return "completed"
        assert killed(r), f"kill {n}: {r.returncode} {r.stderr}"
        s.unchanged_source()
        # Right after the kill: nothing of the previous package is lost (in place, or moved
        # aside whole), and verify never passes a tree that is neither state.
        if kind != "fresh":
            assert (tree_state(pack / "sg_ouss_id/group_ouss_id")
                    or tree_state(Path(f"{pack}.qa2/partial/previous")) == old_unit)
        raw = snapshot(pack)  # the ticket zip, if there is one, is a valid zip
        if verify_ok(pack):  # before any recovery: the tree alone is whole, or verify fails
            assert raw["tree"] == s.old["tree"] or loose(raw)["tree"] == loose(s.new)["tree"], \
                f"kill {n}: verify passed a mixed tree"

        # The next command that takes the lock finds the previous package or the new one:
        # qa2 tar (called in this process: the same code, a third of the cost) ...
        other = s.copy(f"tar{n}", of=work)
        tar = tar_here(other / PROJECT, other)
        after = snapshot(other / PROJECT)
        assert s.is_old(after) or s.is_new(after), f"kill {n}: a mix after recovery"
        assert not leftovers(other / PROJECT)
        if after["tree"]:
            assert isinstance(tar, Path), tar
            tar_checks_out(tar, other / "untar")
        else:  # a first package killed before its unit moved in: there is none
            assert "not a qa2 package" in str(tar)
        # ... and so does the next package run, which then completes. (Not for an append: a
        # completed append is kept, and its re-run adds one more group.)
        if kind != "append":
            again = qa2(*s.args(work))
            assert "qa2: note:" in again.stderr
            assert s.is_new(snapshot(pack)) and verify_ok(pack) and not leftovers(pack)
        return "old" if s.is_old(after) else "new"

    outcomes: list[str] = []  # N = 1, 2, ... (two at a time) until a run completes
    while "completed" not in outcomes:
        assert len(outcomes) < 20, "the run never completed"
        outcomes += in_parallel(one_kill, [len(outcomes) + 1, len(outcomes) + 2])
    kills = outcomes[:outcomes.index("completed")]
    # the first kills find the previous package, the later ones the new one
    assert "old" in kills and "new" in kills and kills == sorted(kills, key=("old", "new").index)
    swap = {"replace": 5, "fresh": 4, "append": 4}[kind]  # unit aside, unit in, manifest, ...
    assert len(kills) == swap, f"the swap now makes {len(kills)} renames, not {swap}"


@needs_strace
def test_verify_right_after_a_kill_mid_swap_does_not_pass(scene):
    s = scene("fresh")
    work = s.copy()
    r = traced(*s.args(work), strace=kill_at(RENAMES, 2))
    assert killed(r)
    r = qa2("verify", work / PROJECT, check=False)
    assert r.returncode == 1 and "[package.interrupted]" in r.stderr


@needs_strace
@pytest.mark.parametrize("at", [f"unit/{MEMBER.split('/', 1)[1]}/script/scriptForImaging.py",
                                "swap"])
def test_kill_9_while_building_leaves_the_previous_package(scene, at):
    """Killed as it writes a copy, or the swap marker (the last write before the swap): the
    previous package is untouched; the next run removes the leftovers and completes."""
    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    r = traced(*s.args(work), strace=["-P", f"{pack}.qa2/partial/{at}", *kill_at("write", 1)])
    assert killed(r), r.stderr
    assert s.is_old(snapshot(pack)) and verify_ok(pack) and leftovers(pack)
    again = qa2(*s.args(work))
    assert "removed the leftovers of an interrupted run" in again.stderr
    assert s.is_new(snapshot(pack)) and verify_ok(pack) and not leftovers(pack)


# ---------------------------------------------------------------------------- ENOSPC


def _writes(s: Scene) -> list[tuple[str, int]]:
    """(file relative to the run's directory, n): the n-th write to each file the run writes,
    first and last of each, from a traced run."""
    work = s.copy("traced")
    log = s.tmp / "writes.log"
    subprocess.run([shutil.which("strace"), "-f", "--seccomp-bpf", "-qq", "-y", "-o", str(log), "-e",
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
    if kind == "fresh":  # what differs from "replace" is the clean-up: one copied file will do
        copies = sorted(p for p, _ in points if "/partial/unit/" in p and not p.endswith("README"))
        points = [(p, n) for p, n in points if p not in copies[1:] and n == 1]
    assert any(p.endswith(".qa2/lock") for p, _ in points)
    assert any(p.endswith("/README") for p, _ in points)
    assert any(p.endswith(".qa2/partial/swap") for p, _ in points)

    def full_at(point: tuple[str, int]) -> None:
        rel, n = point
        work = s.copy(f"full{points.index(point)}")
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

    in_parallel(full_at, points)


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


def _leave_free(disk: Path, pages: int) -> None:
    """Fill ``disk`` (a tmpfs) so that exactly ``pages`` pages stay free."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    st = os.statvfs(disk)
    size = (st.f_bavail - pages) * st.f_frsize
    assert size >= 0, "the disk is already fuller than asked"
    with open(filler, "wb") as fh:  # written, not truncated: a sparse file takes no pages
        for _ in range(size // (1 << 20)):
            fh.write(bytes(1 << 20))
        fh.write(bytes(size % (1 << 20)))
    assert os.statvfs(disk).f_bavail == pages


def test_a_disk_filled_page_by_page_never_costs_the_previous_package(tmpfs, tmp_path, piscript):
    """A real full file system (tmpfs) with 0, 2, 4, ... pages free: every run that does not
    fit fails with one line naming PACKPATH, and leaves the previous package as it was; the
    first run that fits completes."""
    disk = tmpfs("small", "2m")
    src = write_tree(tmp_path / "red", MANUAL)
    dst = disk / PROJECT
    args = ["package", src, dst, "--piscript", piscript, "--mode", "copy", "--jobs", "2"]
    setup_qa2(*args)
    before = snapshot(dst)
    later = time.time_ns() + 10**9
    for path in [*src.rglob("*"), piscript]:  # all looks new: every file is written again
        os.utime(path, ns=(later, later))
    failures = 0
    for pages in range(0, 64, 2):
        _leave_free(disk, pages)
        r = qa2(*args, check=False)
        if r.returncode == 0:
            break
        failures += 1
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        (line,) = errors(r)
        assert str(dst) in line and ("no space left" in line.lower() or "[space.free]" in line)
        assert snapshot(dst) == before and verify_ok(dst) and not leftovers(dst), pages
    else:
        pytest.fail("never fitted")
    assert failures > 2 and verify_ok(dst) and snapshot(dst) != before  # rewritten: new mtimes
    # A first run that does not fit leaves no PACKPATH, no ticket, no scratch.
    _leave_free(disk, 2)
    fresh = disk / "2016.1.00001.S"
    r = qa2("package", src, fresh, "--piscript", piscript, "--mode", "copy", check=False)
    assert r.returncode == 1 and not fresh.exists() and not Path(f"{fresh}.ticket.zip").exists()
    assert not Path(f"{fresh}.qa2/partial").exists()


# ---------------------------------------------------------------------------- refused links


def test_hard_links_across_file_systems_fall_back_to_copies(tmpfs, tmp_path, piscript):
    src = write_tree(tmpfs("other", "32m") / "red", MANUAL)
    dst = tmp_path / PROJECT
    r = qa2("package", src, dst, "--piscript", piscript, "--mode", "hard", "--json")
    out = json.loads(r.stdout)
    assert sum("hard links refused" in w for w in out["warnings"]) == 1
    script = dst / out["member"] / "script/scriptForImaging.py"
    assert script.read_bytes() == (src / "scriptForImaging.py").read_bytes()
    from_tmpfs = [f for f in out["files"] if str(f["source"]).startswith(str(src))]
    assert {f["action"] for f in from_tmpfs if f["dest"].endswith(".py")} == {"copy"}
    assert verify_ok(dst)


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
    actions = {f["dest"].rsplit("/", 2)[-2:][0]: f["action"] for f in json.loads(r.stdout)["files"]
               if f["dest"].endswith(".py")}
    assert set(actions.values()) == {"copy"}
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
    setup_qa2(*s.args(work))  # the files now match the journal
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
    runs = [Traced(*s.args(work), strace=after_flock(lock)) for _ in range(2)]
    for run in runs:
        run.wait_stopped()
    for run in runs:
        run.release()
    results = [run.finish() for run in runs]
    assert sorted(r.returncode for r in results) == [0, 1], [r.stderr for r in results]
    loser = next(r for r in results if r.returncode == 1)
    (line,) = errors(loser)
    assert "holds the lock" in line  # (the winner stopped before writing its name in it)
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
    first = Traced(*s.args(work), strace=barrier).wait_stopped()
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
def test_a_lock_file_removed_by_a_first_run_giving_up_is_not_locked_by_two(scene):
    """A first run on a new PACKPATH fails (ENOSPC) and removes the PACKPATH.qa2 it made, lock
    file included. C had opened that lock file just before, and takes its flock only after D
    made a new lock file and locked it: C must see that the file it locked is gone, and refuse
    because D holds the lock, not run beside D."""
    s = scene("fresh")
    work = s.copy()
    pack = work / PROJECT
    lock = Path(f"{pack}.qa2/lock")
    readme = Path(f"{pack}.qa2/partial/unit/{MEMBER.split('/', 1)[1]}/README")
    a = Traced(*s.args(work), strace=["-P", str(readme), "-e", "trace=write", "-e",
                                       "inject=write:error=ENOSPC:signal=SIGTSTP:when=1"])
    a.wait_stopped()  # A holds the lock; its README write has just failed
    c = Traced(*s.args(work), strace=stop_at("open,openat", lock)).wait_stopped()
    a.release()
    assert a.finish().returncode == 1 and not lock.exists()  # A removed what it made
    d = Traced(*s.args(work), strace=after_flock(lock)).wait_stopped()  # D holds a new lock
    c.release()
    rc = c.finish()
    assert rc.returncode == 1 and "holds the lock" in rc.stderr, rc.stderr
    d.release()
    assert d.finish().returncode == 0
    assert s.is_new(snapshot(pack)) and verify_ok(pack) and not leftovers(pack)


@needs_strace
def test_a_second_run_refuses_while_another_process_holds_the_package(scene):
    """In-process holder: the message names it (pid@host); the tree is untouched."""
    from qa2core.writing.lock import PackLock

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
    package = Traced(*s.args(work), strace=after_flock(lock)).wait_stopped()
    tar = Traced("tar", pack, "--out", out, strace=after_flock(lock)).wait_stopped()
    package.release()
    tar.release()
    p, t = package.finish(), tar.finish()
    assert sorted([p.returncode, t.returncode]) == [0, 1], (p.stderr, t.stderr)
    if t.returncode == 0:  # the tar got the lock: the package run refused, the tar is the old one
        assert "holds the lock" in p.stderr and s.is_old(snapshot(pack))
        (made,) = out.glob("*.tar")
        tar_checks_out(made, work / "untar")
    else:
        assert "holds the lock" in t.stderr and s.is_new(snapshot(pack))
        assert not list(out.iterdir())
    assert verify_ok(pack)


@needs_strace
def test_a_tar_holding_the_lock_keeps_a_package_run_out(scene):
    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    out = work / "out"
    out.mkdir()
    tar = Traced("tar", pack, "--out", out, strace=stop_at(WRITES, None, when=2)).wait_stopped()
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
    tars = [Traced("tar", pack, "--out", out, strace=after_flock(lock)) for _ in range(2)]
    for t in tars:
        t.wait_stopped()
    for t in tars:
        t.release()
    results = [t.finish() for t in tars]
    assert sorted(r.returncode for r in results) == [0, 1]
    # Readers share the lock (LOCK_SH): both get it; the tar's name goes to one, the other
    # stops at "exists" and publishes nothing.
    assert ": exists" in next(r.stderr for r in results if r.returncode)
    (made,) = out.glob("*.tar")
    assert not list(out.glob("*.partial"))
    tar_checks_out(made, work / "untar")


def _two_packages(s: Scene, names: tuple[str, str]) -> list[Path]:
    """Two different packages (their imaging scripts differ), in two directories."""
    packs = []
    for i, name in enumerate(names):
        where = s.tmp / f"p{i}"
        src = write_tree(where / "red", MANUAL | {"scriptForImaging.py": f"# imaging {i}\n"})
        setup_qa2("package", src, where / name, "--piscript", s.piscript, "--mode", "copy")
        packs.append(where / name)
    return packs


@needs_strace
def test_two_tars_writing_into_one_directory_keep_to_their_own_files(scene):
    s = scene("fresh")
    out = s.tmp / "out"
    out.mkdir()
    packs = _two_packages(s, (PROJECT, "2016.1.00001.S"))
    # Both held mid-write: two partial files side by side, neither touches the other's.
    tars = [Traced("tar", p, "--out", out, strace=stop_at(WRITES, None, when=2)) for p in packs]
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
    tar's name is the same. B is held after its check that the name is free (at its first
    write into its partial file); A publishes its tar and is held as it opens its .sha256; B
    finishes; A finishes. One tar wins; its sums are its own; the loser says "exists"."""
    s = scene("fresh")
    out = s.tmp / "out"
    out.mkdir()
    a, b = _two_packages(s, (PROJECT, PROJECT))
    late = Traced("tar", b, "--out", out, strace=stop_at(WRITES, None, when=2)).wait_stopped()
    tar_name = f"{PROJECT}_001_of_001.tar"
    first = Traced("tar", a, "--out", out,
                    strace=stop_at("open,openat", out / f"{tar_name}.sha256")).wait_stopped()
    assert (out / tar_name).exists()
    late.release()
    rb = late.finish()
    first.release()
    ra = first.finish()
    assert (ra.returncode, rb.returncode) == (0, 1), (ra.stderr, rb.stderr)
    (line,) = errors(rb)
    assert f"{out / tar_name}: exists" in line
    assert not list(out.glob("*.partial"))
    tar_checks_out(out / tar_name, s.tmp / "untar")


@needs_strace
def test_a_partial_tar_left_by_a_kill_does_not_stop_the_next_tar(scene):
    s = scene("replace")
    work = s.copy()
    pack = work / PROJECT
    out = work / "out"
    out.mkdir()
    r = traced("tar", pack, "--out", out, strace=kill_at(WRITES, 3))
    assert killed(r)
    assert [p.suffix for p in out.iterdir()] == [".partial"]
    qa2("tar", pack, "--out", out)
    (made,) = out.glob("*.tar")
    tar_checks_out(made, work / "untar")


@needs_strace
def test_a_tar_killed_before_its_sums_is_named_by_the_next_run(scene):
    """Killed after the tar got its name and before its .sha256 exists: the tar is complete
    but unproven; the next run refuses to overwrite it and names it (remove it, or --out)."""
    s = scene("replace")
    work = s.copy()
    out = work / "out"
    out.mkdir()
    tar_name = f"{PROJECT}_001_of_001.tar"
    r = traced("tar", work / PROJECT, "--out", out,
               strace=["-P", str(out / f"{tar_name}.sha256"), *kill_at("open,openat", 1)])
    assert killed(r)
    assert [p.name for p in out.iterdir() if not p.name.endswith(".partial")] == [tar_name]
    r = qa2("tar", work / PROJECT, "--out", out, check=False)
    assert r.returncode == 1
    (line,) = errors(r)
    assert f"{out / tar_name}: exists" in line


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
    setup_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")
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
