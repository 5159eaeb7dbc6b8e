"""A single-node SLURM of our own, for tests: munged, ``slurmctld -D`` and ``slurmd -D``, as root.

Debian's packages (``slurmctld``, ``slurmd``, ``munge``; ``make bootstrap`` installs them), and
nothing of the machine's own set-up: a fresh munge key, socket, ``slurm.conf`` and state
directories, all below one directory; free TCP ports; the daemons are our child processes and
are stopped (and every job cancelled) on leaving :func:`single_node_slurm`. Clients find the
cluster through ``SLURM_CONF`` in :attr:`SlurmCluster.env` (the context manager also puts it in
``os.environ`` while it runs, so ``sbatch``, ``squeue``, ``scancel`` and dask-jobqueue use it).

The configuration: one node ``localhost`` (``CPUs=2``, ``RealMemory`` 90 % of this machine's),
one partition ``debug`` (default), ``select/cons_tres`` with cores and memory as resources,
``proctrack/pgid`` and ``task/none`` (no cgroups needed), no accounting. ``proctrack/pgid``, not
``linuxproc``: a cancelled job's shell dies at the first SIGTERM, its Dask nanny is then orphaned
(reparented to init), and linuxproc, which follows the process tree below slurmstepd, no longer
finds it to send the SIGKILL that follows; the job's process group still holds it.

    python -m qa2core.testing.slurm DIR   # start one in DIR, print its SLURM_CONF, wait for ^C
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "scontrol")
START_TIMEOUT_S = 30.0


class SlurmUnavailable(RuntimeError):
    """SLURM could not be started here; the message says why and ends with the daemons' logs."""


def missing() -> str | None:
    """Why a single-node SLURM cannot start here (None: it can be tried)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "a single-node SLURM is started as root (slurmd runs jobs as their user)"
    absent = [p for p in (*DAEMONS, *CLIENTS) if shutil.which(p, path=_PATH) is None]
    if absent:
        return (f"not installed: {', '.join(absent)} (apt-get install slurmctld slurmd munge; "
                "make bootstrap does)")
    return None


_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 2048


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 20) -> str:
        """A SLURM client command against this cluster; its stdout."""
        r = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode:
            raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def jobs(self) -> dict[str, str]:
        """Job id -> state (PENDING, RUNNING, ...) of every job in the queue."""
        out = self.run("squeue", "-h", "-o", "%i %T", check=False)
        return dict(line.split() for line in out.splitlines() if line.strip())

    def logs(self, lines: int = 40) -> str:
        """The last lines of each daemon's log: what to show when something went wrong."""
        out = []
        for name in DAEMONS:
            path = self.root / "log" / f"{name}.log"
            if not path.exists():  # munged in the foreground logs to its stderr
                path = path.with_suffix(".out")
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError as exc:
                text = [f"({exc})"]
            out += [f"--- {path}", *text]
        return "\n".join(out)


def _write_conf(root: Path, ports: tuple[int, int], cpus: int, memory_mb: int) -> Path:
    d = {k: root / k for k in ("state", "spool", "log", "run")}
    conf = root / "slurm.conf"
    conf.write_text(f"""\
# qa2core.testing.slurm: a single-node SLURM for tests (nothing of the machine's own)
ClusterName=qa2test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root / "munge" / "munge.socket"}
CredType=cred/munge
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
StateSaveLocation={d["state"]}
SlurmdSpoolDir={d["spool"]}
SlurmctldPidFile={d["run"] / "slurmctld.pid"}
SlurmdPidFile={d["run"] / "slurmd.pid"}
SlurmctldLogFile={d["log"] / "slurmctld.log"}
SlurmdLogFile={d["log"] / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
KillWait=5
MinJobAge=10
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
    return conf


@contextlib.contextmanager
def single_node_slurm(root: Path, cpus: int = 2, memory_mb: int | None = None,
                      timeout: float = START_TIMEOUT_S) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd in ``root`` (created), wait until the node is idle,
    yield the cluster; on leaving cancel every job and stop the three daemons."""
    why = missing()
    if why:
        raise SlurmUnavailable(why)
    root = Path(root)
    for sub in ("munge", "state", "spool", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o700)  # munged refuses a key or socket in a directory others may write
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    memory_mb = memory_mb or int(_memory_mb() * 0.9)
    conf = _write_conf(root, (_free_port(), _free_port()), cpus, memory_mb)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": _PATH}
    cluster = SlurmCluster(root, conf, env)
    log = root / "log"
    commands = {
        "munged": ["munged", "--foreground", "--force", f"--key-file={key}",
                   f"--socket={root / 'munge' / 'munge.socket'}", f"--log-file={log / 'munged.log'}",
                   f"--pid-file={root / 'munge' / 'munged.pid'}",
                   f"--seed-file={root / 'munge' / 'munged.seed'}"],
        "slurmctld": ["slurmctld", "-D", "-i", "-f", str(conf)],
        "slurmd": ["slurmd", "-D", "-N", "localhost", "-f", str(conf)],
    }
    saved = os.environ.get("SLURM_CONF")
    try:
        for name, argv in commands.items():
            with open(log / f"{name}.out", "ab") as out:  # what a daemon prints before its log opens
                cluster.procs[name] = subprocess.Popen(
                    argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)
            if name == "munged":
                _wait(cluster, lambda: (root / "munge" / "munge.socket").exists(), timeout,
                      "munged did not create its socket")
            elif name == "slurmctld":
                _wait(cluster, lambda: cluster.run("scontrol", "ping", check=False).count("UP") > 0,
                      timeout, "slurmctld did not answer scontrol ping")
        _wait(cluster, lambda: "idle" in cluster.run("sinfo", "-h", "-o", "%t", check=False),
              timeout, "the node did not become idle")
        os.environ["SLURM_CONF"] = str(conf)
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        _stop(cluster)


def _wait(cluster: SlurmCluster, ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dead = [n for n, p in cluster.procs.items() if p.poll() is not None]
        if dead:
            raise SlurmUnavailable(f"{', '.join(dead)} exited (status "
                                   f"{cluster.procs[dead[0]].returncode}) while starting SLURM\n"
                                   f"{_out(cluster)}{cluster.logs()}")
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            if ready():
                return
        if time.monotonic() > deadline:
            raise SlurmUnavailable(f"{what} within {timeout:.0f} s\n{_out(cluster)}{cluster.logs()}")
        time.sleep(0.2)


def _out(cluster: SlurmCluster) -> str:
    text = []
    for name in DAEMONS:
        path = cluster.root / "log" / f"{name}.out"
        with contextlib.suppress(OSError):
            body = path.read_text(errors="replace").strip()
            if body:
                text += [f"--- {path}", body]
    return "\n".join(text) + ("\n" if text else "")


def job_process_groups(cluster: SlurmCluster) -> set[int]:
    """Process groups of the processes this cluster's jobs started (their environment names its
    ``SLURM_CONF`` and a ``SLURM_JOB_ID``), whatever their parent now is."""
    mine = f"SLURM_CONF={cluster.conf}".encode()
    daemons = {p.pid for p in cluster.procs.values()} | {os.getpgrp()}
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            if mine in env and any(v.startswith(b"SLURM_JOB_ID=") for v in env):
                groups.add(os.getpgid(int(entry.name)))
        except OSError:
            continue
    return groups - daemons


def _stop(cluster: SlurmCluster) -> None:
    """Cancel every job, then stop slurmd, slurmctld and munged (SIGTERM, then SIGKILL), each
    with its process group, and kill what is left of the jobs' process groups; wait for each,
    so nothing is left running."""
    groups: set[int] = set()
    if cluster.procs.get("slurmctld") and cluster.procs["slurmctld"].poll() is None:
        with contextlib.suppress(Exception):
            groups = job_process_groups(cluster)
            cluster.run("scancel", "--full", "--user=root", check=False, timeout=10)
            deadline = time.monotonic() + 10
            while cluster.jobs() and time.monotonic() < deadline:
                time.sleep(0.2)
    groups |= job_process_groups(cluster)
    for name in ("slurmd", "slurmctld", "munged"):
        proc = cluster.procs.get(name)
        if proc is None:
            continue
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        with contextlib.suppress(ProcessLookupError):  # anything the daemon left in its group
            os.killpg(proc.pid, signal.SIGKILL)
    for group in groups | job_process_groups(cluster):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m qa2core.testing.slurm DIR", file=sys.stderr)
        return 2
    try:
        with single_node_slurm(Path(args[0])) as cluster:
            print(f"export SLURM_CONF={cluster.conf}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    except SlurmUnavailable as exc:
        print(f"qa2: SLURM did not start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
