"""qa2 verify catches every corruption a delivery can suffer, and passes fresh packages."""

from __future__ import annotations

import json
import shutil

import pytest

from qa2core.testing import write_tree

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
MANUAL = {
    "uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "scriptForImaging.py": "# imaging\n" * 50,
    "scriptForImagingPrep.py": "# prep\n",
    "img/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "img/target.pb.fits": bytes(range(256)) * 20,
    "casa-20160101-000000.log": "log\n",
}


@pytest.fixture
def package(run_qa2, tmp_path, piscript):
    def make(mode="copy"):
        src = write_tree(tmp_path / f"red-{mode}", MANUAL)
        dst = tmp_path / f"{mode}" / "2015.1.00123.S"
        dst.parent.mkdir()
        r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", mode,
                    "--style", "cycle3-nopipe")
        assert r.exit_code == 0, r.stderr
        return dst

    return make


def verify(run_qa2, dst, *args):
    r = run_qa2("verify", dst, "--json", *args)
    return r.exit_code, json.loads(r.stdout)


def rules(out):
    return {(f["rule"], f["path"].rsplit("/", 1)[-1]) for f in out["findings"] if f["level"] == "ERROR"}


@pytest.mark.parametrize("mode", ["fake", "ticket", "copy", "hard"])
def test_fresh_packages_verify_at_every_level(run_qa2, package, mode):
    dst = package(mode)
    for level in ([], ["--fast"], ["--complete"]):
        code, out = verify(run_qa2, dst, *level)
        assert code == 0 and out["ok"] is True, out
        assert out["plugin"] == "interferometric"


def test_flipped_byte(run_qa2, package):
    dst = package()
    target = dst / MEMBER / "script/scriptForImaging.py"
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    code, out = verify(run_qa2, dst)
    assert code == 1 and ("manifest.checksum", "scriptForImaging.py") in rules(out)
    assert verify(run_qa2, dst, "--fast")[0] == 0  # same size: only the re-hash sees it


def test_truncated_file(run_qa2, package):
    dst = package()
    target = dst / MEMBER / "product/target.pb.fits.gz"
    target.write_bytes(target.read_bytes()[:-10])
    for level in ([], ["--fast"]):
        code, _out = verify(run_qa2, dst, *level)
        assert code == 1, level
    assert ("manifest.checksum", "target.pb.fits.gz") in rules(verify(run_qa2, dst)[1])


def test_missing_file(run_qa2, package):
    dst = package()
    (dst / MEMBER / "log/casa-20160101-000000.log").unlink()
    code, out = verify(run_qa2, dst, "--complete")
    assert code == 1 and ("manifest.missing", "casa-20160101-000000.log") in rules(out)


def test_extra_file(run_qa2, package):
    dst = package()
    (dst / MEMBER / "product/stray.fits").write_bytes(b"x")
    code, out = verify(run_qa2, dst, "--complete")
    assert code == 1 and ("manifest.unlisted", "stray.fits") in rules(out)
    assert verify(run_qa2, dst, "--fast")[0] == 1


def test_missing_scriptforpi(run_qa2, package):
    dst = package("fake")
    (dst / MEMBER / "script/scriptForPI.py").unlink()
    code, out = verify(run_qa2, dst)
    assert code == 1 and ("script.piscript", "") in rules(out)


def test_uncompressed_pb_image(run_qa2, package):
    dst = package("fake")
    (dst / MEMBER / "product/target.pb.fits.gz").rename(dst / MEMBER / "product/target.pb.fits")
    code, out = verify(run_qa2, dst)
    assert code == 1 and ("product.compress", "target.pb.fits") in rules(out)


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/passwd"])
def test_manifest_line_with_a_bad_path(run_qa2, package, bad):
    dst = package()
    with open(dst / "manifest-sha256.txt", "a") as fh:
        fh.write(f"{'0' * 64}  {bad}\n")
    code, out = verify(run_qa2, dst)
    assert code == 1 and any(f["rule"] == "manifest.line" and bad in f["message"]
                             for f in out["findings"])


def test_not_a_package(run_qa2, tmp_path):
    (tmp_path / "random").mkdir()
    r = run_qa2("verify", tmp_path / "random")
    assert r.exit_code == 1 and "not a qa2 package" in r.stderr and "Traceback" not in r.stderr


def test_placeholders_are_an_error_only_for_ingestion(run_qa2, package):
    dst = package()
    assert verify(run_qa2, dst)[0] == 0
    code, out = verify(run_qa2, dst, "--for-ingestion")
    assert code == 1 and any(f["rule"] == "structure.placeholder" for f in out["findings"])


def test_verify_a_copied_package_elsewhere(run_qa2, package, tmp_path):
    dst = package()
    moved = tmp_path / "elsewhere" / "2015.1.00123.S"
    shutil.copytree(dst, moved)
    assert verify(run_qa2, moved)[0] == 0


def test_fast_level_sees_a_truncated_readme(run_qa2, package):
    dst = package()
    readme = dst / MEMBER / "README"
    readme.write_bytes(readme.read_bytes()[:-5])
    code, out = verify(run_qa2, dst, "--fast")
    assert code == 1 and any(f["rule"] == "manifest.oxum" for f in out["findings"])
