"""Benchmark of ``qa2 batch``: N sample SBs packaged in copy mode by ``qa2 batch`` (a LocalCluster
started by the command, its start included) against a sequential shell loop of ``qa2 package``,
and against one of ``qa2 package`` + ``qa2 verify`` (each batch job verifies what it wrote).

Each SB is a copy of the real sample reduction (``build_manual_reduction``) plus a pbcor cube
and its primary beam (``write_pbcor_fits``/``write_pb_fits``), so every job copies, hashes and
compresses real bytes. Before every run the sources are evicted from the page cache. Outputs
stay until the end (see bench/run.py's Method). The section it writes into ``--out`` sits between
markers, so ``bench/run.py`` keeps it when it rewrites the rest of the file.

    .venv/bin/python bench/batch.py --out docs/benchmarks.md   (or: bench/run.py --cases batch)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QA2 = Path(os.path.normpath(Path(sys.executable).absolute())).with_name("qa2")
STYLE = "cycle3-nopipe"
BEGIN, END = "<!-- bench/batch.py: begin -->", "<!-- bench/batch.py: end -->"


def say(msg: str) -> None:
    print(f"bench batch: {msg}", file=sys.stderr, flush=True)


def build(work: Path, sbs: int, channels: int) -> tuple[list[Path], object]:
    from qa2core.testing import sampledata

    first = sampledata.build_manual_reduction(work / "src" / "sb01" / "reduction")
    shape = (1, channels, 1024, 1024)
    sampledata.write_pbcor_fits(first.root / "Imaging" / "big.image.pbcor.fits", shape)
    sampledata.write_pb_fits(first.root / "Imaging" / "big.pb.fits", shape)
    roots = [first.root]
    for i in range(2, sbs + 1):
        dst = work / "src" / f"sb{i:02d}" / "reduction"
        dst.parent.mkdir(parents=True)
        subprocess.run(["cp", "-a", first.root, dst], check=True)
        roots.append(dst)
    return roots, first


def files_below(roots: Sequence[Path]) -> list[Path]:
    return [Path(d, f) for r in roots for d, _, fs in os.walk(r) for f in fs]


def evict(files: Sequence[Path]) -> None:
    os.sync()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def jobs_file(path: Path, roots: Sequence[Path], sample, out: Path) -> None:
    lines = ["[defaults]", 'mode = "copy"', f'style = "{STYLE}"', f'readme = "{sample.readme_header}"',
             f'piscript = "{sample.piscript}"', ""]
    for i, root in enumerate(roots, 1):
        (out / f"sb{i:02d}").mkdir(parents=True)
        lines += ["[[job]]", f'name = "sb{i:02d}"', 'command = "package"', f'origpath = "{root}"',
                  f'packpath = "{out}/sb{i:02d}/{sample.project}"', ""]
    path.write_text("\n".join(lines))


def loop_script(roots: Sequence[Path], sample, out: Path, verify: bool) -> list[str]:
    """``qa2 package`` of each SB in turn (and ``qa2 verify``, as each batch job does)."""
    for i in range(1, len(roots) + 1):
        (out / f"sb{i:02d}").mkdir(parents=True)
    body = "; ".join(
        f'"{QA2}" package "{root}" "{out}/sb{i:02d}/{sample.project}" --mode copy --style {STYLE} '
        f'--readme "{sample.readme_header}" --piscript "{sample.piscript}" --json > /dev/null'
        + (f'; "{QA2}" verify "{out}/sb{i:02d}/{sample.project}" > /dev/null' if verify else "")
        for i, root in enumerate(roots, 1))
    return ["bash", "-ec", body]


def timed(args: Sequence[str | Path]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))}: exit {out.returncode}: {out.stderr[-2000:]}")
    return elapsed, out.stdout


def render(args: argparse.Namespace, times: dict[str, list[float]], nbytes: int, nfiles: int,
           report: dict, started: datetime, load: tuple[str, str]) -> str:
    med = {k: statistics.median(v) for k, v in times.items()}
    durations = [j["duration"] for j in report.get("jobs", [])]
    written = sum(j["bytes"] for j in report.get("jobs", []))
    ratio, ratio_v = med["loop"] / med["batch"], med["loop_verify"] / med["batch"]
    table = ["| run | median s | min–max s |", "| --- | ---: | ---: |",
             *(f"| {LABELS[k]} | {med[k]:.2f} | {min(v):.2f}–{max(v):.2f} |" for k, v in times.items())]
    return "\n".join([
        BEGIN,
        "## qa2 batch against a shell loop of qa2 package",
        "",
        f"Written by `bench/batch.py` (`bench/run.py --cases batch`), run {started:%Y-%m-%d %H:%M} UTC "
        f"on {os.cpu_count()} CPUs. {args.sbs} SBs, each the sample manual reduction plus a "
        f"{args.channels}-channel 1024×1024 pbcor cube and its PB: {nfiles:,} source files, "
        f"{nbytes / 1e6:,.0f} MB in all; every job `--mode copy --style {STYLE}` (the PB compressed, "
        f"everything else copied and hashed), {written / 1e6:,.0f} MB written per run. Median of "
        f"{args.repeat} runs, sources evicted from the page cache before each. Load average "
        f"(1/5/15 min) at start {load[0]}, at end {load[1]}: other work on the machine is noise.",
        "",
        *table,
        "",
        f"**Ratio: the loop of `qa2 package` + `qa2 verify` (what each batch job does) takes "
        f"{ratio_v:.2f}× the time of `qa2 batch`; the loop of `qa2 package` alone {ratio:.2f}×** "
        f"(`--workers {args.workers}`, LocalCluster start included; > 1 means batch is faster). "
        f"Each batch job took {statistics.median(durations):.2f} s (median, in its worker, verify "
        f"included) against {med['loop_verify'] / args.sbs:.2f} s per package + verify in the loop "
        "(process starts included). A lone `qa2 package` already copies, hashes and compresses "
        f"on min(4, CPUs) = {min(4, os.cpu_count() or 1)} threads, so on a machine this size "
        "running jobs side by side gains little over the cluster's start; batch pays off with more "
        "cores or nodes than one package can use. The resume run finds all "
        f"{args.sbs} jobs up to date by their metadata fingerprints and runs none (no cluster is "
        "started).",
        END,
    ])


LABELS = {"loop": "sequential loop: `qa2 package` × N",
          "loop_verify": "sequential loop: `qa2 package` + `qa2 verify` × N",
          "batch": "`qa2 batch` (LocalCluster)",
          "resume": "`qa2 batch` again (all up to date)"}


def keep_section(path: Path, text: str) -> str:
    """``text`` with the batch section of the file at ``path`` (if any) kept at its end."""
    try:
        old = path.read_text()
    except OSError:
        return text
    if BEGIN not in old or END not in old or BEGIN in text:
        return text
    return text.rstrip("\n") + "\n\n" + old[old.index(BEGIN):old.index(END) + len(END)] + "\n"


def write_section(path: Path, section: str) -> None:
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + section + "\n"
    path.write_text(new)


def _loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="Markdown file to write the section into")
    p.add_argument("--sbs", type=int, default=8, help="number of SBs (jobs)")
    p.add_argument("--channels", type=int, default=16, help="channels of each SB's pbcor cube and PB")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=REPO.parent)
    args = p.parse_args(argv)
    os.environ.setdefault("CASASITECONFIG", str(REPO / ".venv" / "casasiteconfig.py"))
    started, load = datetime.now(timezone.utc), _loadavg()
    work = Path(tempfile.mkdtemp(prefix=".qa2-bench-batch-", dir=args.workdir))
    times: dict[str, list[float]] = {"loop": [], "loop_verify": [], "batch": [], "resume": []}
    try:
        say(f"building {args.sbs} SBs in {work}")
        roots, sample = build(work, args.sbs, args.channels)
        files = files_below(roots)
        nbytes = sum(f.stat().st_size for f in files)
        report: dict = {}
        for rep in range(1, args.repeat + 1):
            for method in ("loop", "loop_verify", "batch"):
                out = work / "out" / f"{rep}-{method}"
                evict(files)
                if method != "batch":
                    elapsed, _ = timed(loop_script(roots, sample, out, method == "loop_verify"))
                else:
                    jobs_file(work / f"{rep}.toml", roots, sample, out)
                    elapsed, stdout = timed([QA2, "batch", work / f"{rep}.toml", "--workers",
                                             str(args.workers), "--json"])
                    report = json.loads(stdout)
                    resume, _ = timed([QA2, "batch", work / f"{rep}.toml", "--json"])
                    times["resume"].append(resume)
                times[method].append(elapsed)
                say(f"[{rep}/{args.repeat}] {method:11} {elapsed:6.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = render(args, times, nbytes, len(files), report, started, (load, _loadavg()))
    print(section)
    if args.out:
        write_section(args.out, section)
        say(f"wrote the section into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
