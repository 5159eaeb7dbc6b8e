"""qa2 tar and real OUS names: what JAO ingests."""

from __future__ import annotations

import json
import subprocess
import tarfile

import pytest

from qa2core.testing import fits_header, write_tree

UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
MANUAL = {
    "uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "scriptForImaging.py": "# imaging\n",
    "scriptForImagingPrep.py": "# prep\n",
    "img/a.image.pbcor.fits": fits_header("OBJECT  = 'A       '") + b"A" * (20000 - 2880),
    "img/b.image.pbcor.fits": fits_header("OBJECT  = 'B       '") + b"B" * (20000 - 2880),
    "img/a.pb.fits": fits_header("OBJECT  = 'P       '") + b"P" * (20000 - 2880),
    "casa-20160101-000000.log": "log\n",
}


@pytest.fixture
def package(run_qa2, tmp_path, piscript):
    def make(*extra):
        src = write_tree(tmp_path / "red", MANUAL)
        dst = tmp_path / "2016.1.01435.S"
        header = tmp_path / "README.header.txt"
        header.write_text("ALMA\n#####\nProject code: 2016.1.01435.S\nSB name: X\n#####\n")
        r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy",
                    "--readme", header, *extra)
        assert r.exit_code == 0, r.stderr
        return dst

    return make


def test_tar_with_real_names_verifies_after_untar(run_qa2, package, tmp_path):
    dst = package()
    r = run_qa2("tar", dst, "--ous-uids", UIDS, "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    tar_path = tmp_path / "2016.1.01435.S_uid___A001_X87c_X69_001_of_001.tar"
    assert out["tars"] == [str(tar_path)]
    for tool, suffix in (("sha256sum", ".sha256"), ("md5sum", ".md5sum")):
        subprocess.run([tool, "-c", tar_path.name + suffix], cwd=tmp_path, check=True,
                       capture_output=True)
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        assert {n.split("/")[0] for n in names} == {"2016.1.01435.S"}
        member = ("2016.1.01435.S/science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/"
                  "member.uid___A001_X87c_X69")
        assert f"{member}/script/scriptForPI.py" in names and f"{member}/calibration" in names
        assert not any("ouss_id" in n for n in names)
        tar.extractall(tmp_path / "untar", filter="data")
    subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"],
                   cwd=tmp_path / "untar/2016.1.01435.S", check=True)
    assert run_qa2("verify", tmp_path / "untar/2016.1.01435.S", "--for-ingestion").exit_code == 0


def test_tar_splits_into_numbered_volumes(run_qa2, package, tmp_path):
    dst = package()
    r = run_qa2("tar", dst, "--max-size", "0.00002", "--json")  # ~21 kB per volume
    tars = json.loads(r.stdout)["tars"]
    assert len(tars) >= 2
    assert all(t.endswith(f"_of_{len(tars):03d}.tar") for t in tars)
    assert "placeholder" in r.stderr
    seen = set()
    for path in tars:
        with tarfile.open(path) as tar:
            seen |= {n for n in tar.getnames() if tar.getmember(n).isfile()}
    files = {p.relative_to(dst.parent).as_posix() for p in dst.rglob("*")
             if p.is_file() and not p.name.startswith(".")}
    assert seen == files


def test_tar_target_exists(run_qa2, package):
    dst = package()
    assert run_qa2("tar", dst).exit_code == 0
    r = run_qa2("tar", dst)
    assert r.exit_code == 1 and "exists" in r.stderr and "Traceback" not in r.stderr


def test_bad_uid_is_a_usage_error(run_qa2, package, tmp_path):
    dst = package()
    r = run_qa2("tar", dst, "--ous-uids", "uid://A001/X87c/X67,nonsense,uid://A001/X87c/X69")
    assert r.exit_code == 2 and "'nonsense' is not an ALMA UID" in r.stderr


def test_package_with_real_names_is_ready_for_ingestion(run_qa2, package):
    dst = package("--ous-uids", UIDS)
    member = dst / "science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/member.uid___A001_X87c_X69"
    assert (member / "README").exists() and not (dst / "sg_ouss_id").exists()
    r = run_qa2("verify", dst, "--for-ingestion", "--json")
    assert r.exit_code == 0, r.stdout


def test_not_a_package(run_qa2, tmp_path):
    (tmp_path / "nothing").mkdir()
    r = run_qa2("tar", tmp_path / "nothing")
    assert r.exit_code == 1 and "not a qa2 package" in r.stderr
