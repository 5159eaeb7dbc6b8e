"""A 2 GB weblog costs no more memory than a small one: content reaches the checks as streams."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

QA2 = Path(sys.executable).with_name("qa2")
WEBLOG_BYTES = 2 * 2**30
LIMIT_KB = 200 * 1024


class _Zeros:
    """A readable stream of ``n`` zero bytes, without ever holding them."""

    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


def _big_weblog(path: Path, stamp: str) -> None:
    """A real gzip tar holding 2 GiB of page data (zeros compress to a few MB on disk)."""
    from isal import igzip

    with igzip.open(path, "wb", compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        page = tarfile.TarInfo(f"pipeline-{stamp}/html/index.html")
        page.size = 6
        tar.addfile(page, _Zeros(6))
        blob = tarfile.TarInfo(f"pipeline-{stamp}/html/stage12/plots.bin")
        blob.size = WEBLOG_BYTES
        tar.addfile(blob, _Zeros(WEBLOG_BYTES))


# Measured from a small wrapper process: a child forked straight from pytest would inherit
# pytest's own peak (Linux keeps the high-water mark across exec).
_WRAPPER = ("import os, sys; pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ); "
            "_, status, usage = os.wait4(pid, 0); print(usage.ru_maxrss, file=sys.stderr); "
            "sys.exit(os.waitstatus_to_exitcode(status))")


def _peak_rss_kb(*args: object) -> tuple[int, int, str]:
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(QA2), *map(str, args)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    *lines, peak = done.stderr.strip().splitlines() or ["0"]
    return done.returncode, int(peak), "\n".join(lines)


@pytest.mark.skipif(shutil.disk_usage("/tmp").free < 2**30, reason="needs 1 GiB of free space")
def test_stage_and_verify_of_a_2gb_weblog_stay_under_200mb(runs, copy_run, tmp_path):
    run = copy_run(runs["cycle4"])
    weblog = run.products / f"{run.mous}.weblog.tgz"
    weblog.unlink()
    _big_weblog(weblog, "20170124T142630")
    staged = tmp_path / "staged" / run.project
    staged.parent.mkdir()
    code, stage_kb, err = _peak_rss_kb("stage", run.root, staged, "--piscript", run.piscript,
                                       "--pipe-readme", run.readme)
    assert code == 0, err
    code, verify_kb, err = _peak_rss_kb("verify", staged)
    assert code == 0, err
    assert stage_kb < LIMIT_KB, f"qa2 stage peaked at {stage_kb // 1024} MB"
    assert verify_kb < LIMIT_KB, f"qa2 verify peaked at {verify_kb // 1024} MB"
