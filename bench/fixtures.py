"""Benchmark input trees, built with the real qa2 sample builder and scaled up.

Two cases, each a manual reduction from :func:`qa2core.testing.sampledata.build_manual_reduction`
(real MSs, caltables, CASA images, scripts) plus bulk data the interferometric plugin packages:

* ``large``: a few big image cubes ``Imaging/big_N.image.fits`` and a few smaller pbcor cubes
  ``Imaging/big_N.image.pbcor.fits`` (all shipped as they are: linked in hard mode, copied in
  copy mode), each pbcor cube with its NaN-blanked Gaussian primary beam ``Imaging/big_N.pb.fits``
  of the same shape (shipped as ``.pb.fits.gz``, so compression is measured; a pbcor image
  without its PB would draw a ``product.pb_partner`` warning, one whose PB has another shape a
  ``product.pb_shape`` error).
* ``small``: many small files in a QA report directory ``Imaging/NGC5921.qa2/`` (shipped to
  ``qa/`` file by file), like a weblog or a plot directory.
* ``fake200k``: a manual SB of 10 EBs (each ``Calibration_X*`` with its
  ``<EB>.ms.scriptForCalibration.py``) whose per-EB ``<EB>.qa2/`` folders hold ~20,000 small
  plots each: ~200,000 files, for ``--mode fake`` (names and inodes only).
* ``sample``: the sample reduction alone, which bench/run.py packages in copy mode for the
  small-package ``qa2 verify`` and the import budget; plus a copy of it without pixels (no
  images, no FITS), whose package has an empty ``product/``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from qa2core.testing import sampledata

MB = 1_000_000
PLANE = (1024, 1024)  # y, x of the synthetic cubes: 4 MiB per float32 channel
SEED_CHANNELS = 16  # channels of real-looking pbcor data repeated to fill the big cubes


@dataclass(frozen=True)
class Case:
    """One reduction directory to package, with what the baselines need to know about it."""

    name: str
    sample: sampledata.Sample
    files: tuple[Path, ...]  # every regular file below root (the bytes cp and sha256sum see)
    nbytes: int
    pbs: tuple[Path, ...] = ()  # the PB FITS files the compression benchmarks use
    pb_bytes: int = 0
    note: str = ""
    cold: bool = True  # evict the files from the page cache before each run (they are read)
    package: Path | None = None  # sample: the PACKPATH bench/run.py made of it (its files are `files`)

    @property
    def root(self) -> Path:
        return self.sample.root

    @property
    def nfiles(self) -> int:
        return len(self.files)


def iter_files(top: Path) -> list[Path]:
    """Every regular file below ``top`` (as ``cp`` and ``find -type f`` see them), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        out += [Path(dirpath, name) for name in sorted(filenames)]
    return out


def _scan(sample: sampledata.Sample, name: str, pbs: tuple[Path, ...], note: str,
          cold: bool = True) -> Case:
    files = tuple(iter_files(sample.root))
    pb_bytes = sum(pb.stat().st_size for pb in pbs)
    return Case(name, sample, files, sum(f.stat().st_size for f in files), pbs, pb_bytes, note,
                cold)


def _channels(nbytes: float) -> int:
    return max(1, round(nbytes / (4 * PLANE[0] * PLANE[1])))


def _write_big_cube(path: Path, seed: Path, nchan: int) -> None:
    """A valid FITS cube of ``nchan`` channels: the seed's header and data, repeated.

    Streams block by block, so memory stays at one seed cube whatever the size.
    """
    with fits.open(seed) as hdul:
        header = hdul[0].header.copy()
        block = np.asarray(hdul[0].data)
    header["NAXIS3"] = nchan
    out = fits.StreamingHDU(path, header)
    try:
        done = 0
        while done < nchan:
            n = min(SEED_CHANNELS, nchan - done)
            out.write(block[:, :n])
            done += n
    finally:
        out.close()


def build_large(base: Path, size_gb: float, pb_mb: float, big_files: int) -> Case:
    """~``size_gb`` GB: the sample, ``big_files`` pbcor cubes each with its PB of the same shape
    (``pb_mb`` MB of PBs in all: qa2 checks that a PB has its image's shape), and ``big_files``
    image cubes (``.image.fits``, no PB needed) with the rest of the bytes."""
    sample = sampledata.build_manual_reduction(base / "large" / "reduction")
    imaging = sample.root / "Imaging"
    pb_shape = (1, _channels(pb_mb * MB / big_files), *PLANE)
    seed = sampledata.write_pbcor_fits(base / "seed.pbcor.fits", (1, SEED_CHANNELS, *PLANE))
    pbs = []
    for n in range(1, big_files + 1):
        pbs.append(sampledata.write_pb_fits(imaging / f"big_{n}.pb.fits", pb_shape))
        _write_big_cube(imaging / f"big_{n}.image.pbcor.fits", seed, pb_shape[1])
    have = sum(f.stat().st_size for f in iter_files(sample.root))
    per_file = max(0.0, size_gb * 1e9 - have) / big_files
    for n in range(1, big_files + 1):
        _write_big_cube(imaging / f"big_{n}.image.fits", seed, _channels(per_file))
    seed.unlink()
    pb = pbs[0].stat().st_size / MB
    note = (f"{big_files} × {per_file / MB:,.0f} MB image cubes + {big_files} × {pb:,.0f} MB pbcor "
            f"cubes, each with its NaN-blanked Gaussian PB of the same shape ({pb:,.0f} MB), "
            "+ the sample reduction")
    return _scan(sample, "large", tuple(pbs), note)


def build_small(base: Path, nfiles: int, kib: int, per_dir: int = 200) -> Case:
    """The sample plus ``nfiles`` random ``kib`` KiB files in ``Imaging/NGC5921.qa2/dNNN/``."""
    sample = sampledata.build_manual_reduction(base / "small" / "reduction")
    qa_dir = sample.root / "Imaging" / "NGC5921.qa2"
    for i in range(nfiles):
        sub = qa_dir / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            sub.mkdir(parents=True)
        (sub / f"plot_{i:05d}.png").write_bytes(os.urandom(kib * 1024))
    note = f"{nfiles:,} × {kib} KiB files in a QA directory + the sample reduction"
    return _scan(sample, "small", (), note)


def eb_uids(n: int) -> tuple[str, ...]:
    """``n`` distinct EB uids (distinct ``Calibration_X*`` names too)."""
    return tuple(f"uid___A002_Xb8e115_X{0x1e3b + 0x111 * i:x}" for i in range(n))


def build_many(base: Path, nfiles: int, ebs: int, kib: int) -> Case:
    """A manual SB of ``ebs`` EBs with ``nfiles`` random ``kib`` KiB plots spread over the EBs'
    ``Calibration_X*/<EB>.qa2/`` folders (flat, as plot directories are)."""
    uids = eb_uids(ebs)
    sample = sampledata.build_manual_reduction(base / "fake200k" / "reduction", ebs=uids)
    blob = os.urandom(kib * 1024 + 4096)
    for n, eb in enumerate(uids):
        qa_dir = sample.root / sampledata.calibration_dir_name(eb) / f"{eb}.qa2"
        qa_dir.mkdir()
        for i in range(n * nfiles // ebs, (n + 1) * nfiles // ebs):
            with open(qa_dir / f"{eb}.plot_{i:06d}.png", "xb") as fh:
                fh.write(blob[i % 4096:i % 4096 + kib * 1024])
    note = (f"{ebs} EBs, {nfiles:,} × {kib} KiB plots in their `<EB>.qa2/` folders "
            "+ the sample reduction")
    return _scan(sample, "fake200k", (), note, cold=False)


def _pixels(directory: str, names: list[str]) -> list[str]:
    """``shutil.copytree``'s ignore: every image and FITS file of ``Imaging/`` (scripts and logs stay)."""
    if Path(directory).name != "Imaging":
        return []
    return [n for n in names if not n.endswith((".py", ".log"))]


def build_sample(base: Path) -> tuple[Case, sampledata.Sample]:
    """The sample reduction as it is, and a copy of it without pixels (same README header and
    scriptForPI.py)."""
    sample = sampledata.build_manual_reduction(base / "sample" / "reduction")
    root = base / "sample-nopixels" / "reduction"
    shutil.copytree(sample.root, root, symlinks=True, ignore=_pixels)
    nopix = sampledata.Sample(root, sample.readme_header, sample.piscript, sample.ebs, sample.project)
    return _scan(sample, "sample", (), "the sample reduction", cold=False), nopix


def evict(files: tuple[Path, ...]) -> None:
    """Drop the files' pages from the page cache, so the next run reads them from disk.

    ``/proc/sys/vm/drop_caches`` is not writable in this container, even as root;
    ``POSIX_FADV_DONTNEED`` after a ``sync`` evicts clean pages per file without privileges.
    """
    os.sync()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free
