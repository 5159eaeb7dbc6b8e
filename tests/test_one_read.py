"""Verify at the hashing floor (issue 21): each byte read once, no import it does not need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qa2core import engine
from qa2core.checks.verify import verify
from qa2core.writing import fileops

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"


def test_verify_hashes_what_the_rules_read_in_the_same_read(toy_pm, toy_tree, tmp_path, piscript,
                                                            monkeypatch):
    dst = tmp_path / "2015.1.00123.S"
    engine.package(toy_tree, dst, piscript=piscript, plugins=toy_pm, mode="copy")
    opened, hashed = [], []
    real_open, real_hash = fileops.open_source, fileops.hash_file

    def spy_open(path, follow=True):
        opened.append(str(path))
        return real_open(path, follow)

    def spy_hash(path, follow=True):
        hashed.append(str(path))
        return real_hash(path, follow)

    monkeypatch.setattr(fileops, "open_source", spy_open)
    monkeypatch.setattr(fileops, "hash_file", spy_hash)
    assert verify(dst, plugins=toy_pm).ok
    products = {p for p in opened if "/product/" in p}
    assert products, opened  # the FITS rules read the products ...
    assert not products & set(hashed)  # ... and that read was the checksum's
    every = {str(p) for p in dst.rglob("*") if p.is_file() and p.name != "manifest-sha256.txt"}
    assert every <= set(opened) | set(hashed)  # and every file was read


def test_verify_of_a_package_without_pixels_imports_no_astropy_nor_numpy(toy_pm, tmp_path,
                                                                        run_qa2):
    from qa2core.testing import write_tree

    src = write_tree(tmp_path / "red", {"Calibration/uid___A002_X1_X2.ms.scriptForCalibration.py":
                                        "# cal\n", "Imaging/scriptForImaging.py": "# im\n"})
    pi = write_tree(tmp_path / "pi", {"scriptForPI.py": "# $Id: scriptForPI.py,v 1.23 x $\n"})
    dst = tmp_path / "2015.1.00123.S"
    qa2 = Path(sys.executable).with_name("qa2")
    subprocess.run([str(qa2), "package", str(src), str(dst), "--piscript", str(pi),
                    "--mode", "copy"], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import sys; from qa2core.cli import main; main(sys.argv[1:])",
                           "verify", str(dst)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert not {"astropy", "numpy"} & imported
