"""The qa2 command as a user meets it: exit codes, one-line errors, --json, installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa2core.testing import tree_state, write_tree

QA2 = Path(sys.executable).with_name("qa2")
MANUAL = {
    "Calibration_X2/uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "Imaging/scriptForImaging.py": "# imaging\n",
    "Imaging/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "Imaging/target.pb.fits": bytes(2880),
    "casa-20160101-000000.log": "log\n",
}


@pytest.fixture
def src(tmp_path, request):
    """The reduction; byte for byte unchanged at teardown unless marked ``mutates_source``."""
    root = write_tree(tmp_path / "reduction", MANUAL)
    before = tree_state(root)
    yield root
    if request.node.get_closest_marker("mutates_source") is None:
        assert tree_state(root) == before, "the source changed"


@pytest.fixture
def dst(tmp_path):
    return tmp_path / "2015.1.00123.S"


def one_error_line(result, *needles):
    """The contract: each problem is one line on stderr naming the path/value; no traceback."""
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert lines, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert any(all(n in line for n in needles) for line in lines), result.stderr


def test_package_copy_writes_the_tree_and_prints_it(run_qa2, src, dst, piscript, header):
    before = tree_state(src)
    r = run_qa2("package", f"{src}/", f"{dst}/", "--readme", header, "--piscript",
                piscript.parent, "--mode", "copy", "--style", "cycle3-nopipe")
    assert r.exit_code == 0, r.stderr
    assert "target.pb.fits.gz" in r.stdout
    member = dst / "sg_ouss_id/group_ouss_id/member_ouss_id"
    assert (member / "script/scriptForPI.py").read_bytes() == piscript.read_bytes()
    assert (member / "script/uid___A002_X1_X2.ms.scriptForCalibration.py").exists()
    assert tree_state(src) == before


def test_json_is_one_object_on_stdout(run_qa2, src, dst, piscript):
    r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"plugin", "style", "mode", "files", "warnings", "errors"} <= set(out)
    assert out["plugin"] == "interferometric" and out["mode"] == "copy"
    pb = next(f for f in out["files"] if f["dest"].endswith("target.pb.fits.gz"))
    assert pb["action"] == "gzip" and pb["bytes"] == 2880
    assert pb["source"] == str(src / "Imaging/target.pb.fits")


def test_dry_run_json_writes_nothing(run_qa2, src, dst, piscript):
    r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["dry_run"] is True
    assert not dst.exists() and not Path(f"{dst}.ticket.zip").exists()


def test_detect_prints_the_plugin_first(run_qa2, src):
    r = run_qa2("detect", src)
    assert r.exit_code == 0 and r.stdout.split()[0] == "interferometric"
    j = json.loads(run_qa2("detect", src, "--json").stdout)
    assert j["plugin"] == "interferometric" and j["claims"][0]["plugin"] == "interferometric"


def test_plugins_and_styles_list_what_is_installed(run_qa2):
    plugins = json.loads(run_qa2("plugins", "--json").stdout)["plugins"]
    assert {"interferometric", "totalpower", "pipeline"} <= {p["name"] for p in plugins}
    styles = {s["name"]: s for s in json.loads(run_qa2("styles", "--json").stdout)["styles"]}
    assert styles["cycle0-nopipe"]["noms"] is False and styles["cycle4-pipe"]["pipeline"] is True
    assert "" in styles


# ---------------------------------------------------------------- bad input, one case each


def test_nonexistent_origpath(run_qa2, tmp_path, dst):
    r = run_qa2("package", tmp_path / "nope", dst)
    assert r.exit_code == 2
    one_error_line(r, str(tmp_path / "nope"), "does not exist")


def test_empty_origpath(run_qa2, tmp_path, dst):
    (tmp_path / "empty").mkdir()
    r = run_qa2("package", tmp_path / "empty", dst)
    assert r.exit_code == 1
    one_error_line(r, "empty")
    assert not dst.exists()


def test_packpath_inside_origpath(run_qa2, src, piscript):
    before = tree_state(src)
    r = run_qa2("package", src, src / "2015.1.00123.S", "--piscript", piscript, "--mode", "copy")
    assert r.exit_code == 1
    one_error_line(r, "must not be inside ORIGPATH")
    assert tree_state(src) == before


def test_origpath_inside_packpath(run_qa2, tmp_path, piscript):
    pack = tmp_path / "2015.1.00123.S"
    inner = write_tree(pack / "reduction", MANUAL)
    before = tree_state(pack)
    r = run_qa2("package", inner, pack, "--piscript", piscript, "--mode", "copy")
    assert r.exit_code == 1
    one_error_line(r, "must not contain ORIGPATH")
    assert tree_state(pack) == before


def test_packpath_is_a_file(run_qa2, src, dst):
    dst.write_text("a file")
    r = run_qa2("package", src, dst)
    assert r.exit_code == 1
    one_error_line(r, str(dst), "not a directory")
    assert dst.read_text() == "a file"


@pytest.mark.parametrize(("option", "value", "valid"), [
    ("--style", "cycle9-magic", "cycle3-nopipe"),
    ("--mode", "move", "copy"),
    ("--append", "sideways", "member"),
])
def test_unknown_choice_lists_valid_values(run_qa2, src, dst, option, value, valid):
    r = run_qa2("package", src, dst, option, value)
    assert r.exit_code == 2
    assert value in r.stderr and valid in r.stderr and "Traceback" not in r.stderr
    assert not dst.exists()


def test_append_member_without_package(run_qa2, src, dst, piscript):
    r = run_qa2("package", src, dst, "--piscript", piscript, "--append", "member")
    assert r.exit_code == 1
    one_error_line(r, "--append member")
    assert not dst.exists()


def test_missing_piscript_refused_in_copy_mode_but_fake_mode_warns(run_qa2, src, dst):
    r = run_qa2("package", src, dst, "--mode", "copy", "--style", "cycle2-nopipe")
    assert r.exit_code == 1
    one_error_line(r, "scriptForPI", "--piscript")
    assert not dst.exists()
    r = run_qa2("package", src, dst, "--mode", "fake", "--style", "cycle2-nopipe")
    assert r.exit_code == 0 and "piscript" in r.stderr


def test_piscript_directory_without_the_script(run_qa2, src, dst, tmp_path):
    (tmp_path / "nopi").mkdir()
    r = run_qa2("package", src, dst, "--piscript", tmp_path / "nopi", "--mode", "copy")
    assert r.exit_code == 2
    one_error_line(r, "holds no scriptForPI.py")


@pytest.mark.mutates_source
def test_unreadable_source_keeps_the_previous_package(run_qa2, src, dst, piscript, monkeypatch):
    assert run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy").exit_code == 0
    before = tree_state(dst)
    victim = src / "Imaging/scriptForImaging.py"
    if os.geteuid() == 0:  # root reads everything: make the access check see what a user would
        import qa2core.planning.scan

        real = os.access
        monkeypatch.setattr(qa2core.planning.scan.os, "access",
                            lambda p, m: False if Path(p) == victim else real(p, m))
    else:
        victim.chmod(0)
    r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy")
    assert r.exit_code == 1
    one_error_line(r, str(victim), "not readable")
    assert tree_state(dst) == before


@pytest.mark.mutates_source
def test_symlink_loop_in_origpath(run_qa2, src, dst):
    (src / "Imaging/loop").symlink_to(src)
    r = run_qa2("package", src, dst)
    assert r.exit_code == 1
    one_error_line(r, "loop", "Imaging/loop")
    assert not dst.exists()


def test_errors_with_json_are_still_one_object(run_qa2, tmp_path, dst):
    r = run_qa2("package", tmp_path / "nope", dst, "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 2 and out["errors"] and "does not exist" in out["errors"][0]


# ---------------------------------------------------------------- the installed script


def test_installed_script_runs_and_help_does_not_import_casatools(src):
    r = subprocess.run([QA2, "detect", src], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("interferometric")
    code = "import sys, qa2core.cli; sys.exit('casatools' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    r = subprocess.run([QA2, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "package" in r.stdout


def test_installed_script_usage_error_has_no_traceback(tmp_path):
    r = subprocess.run([QA2, "package", tmp_path / "nope", tmp_path / "p", "--mode", "move"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "move" in r.stderr



@pytest.mark.parametrize("stream", ["stderr", "stdout"])
def test_a_finished_run_whose_output_cannot_be_written_still_counts_as_done(src, dst, piscript,
                                                                           header, stream):
    """stderr or stdout on a full disk (/dev/full: every write is ENOSPC): the package is
    written and verifies, and the exit status says so; never 'nothing was kept'."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([str(QA2), "package", str(src), str(dst), "--readme", str(header),
                               "--piscript", str(piscript), "--mode", "copy"],
                              stdin=subprocess.DEVNULL, **{stream: full},
                              **({"stdout": subprocess.PIPE} if stream == "stderr" else
                                 {"stderr": subprocess.PIPE}), text=True)
    assert done.returncode == 0, done
    assert "nothing was kept" not in (done.stdout or "") + (done.stderr or "")
    check = subprocess.run([str(QA2), "verify", str(dst)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_json_is_written_as_it_is_encoded_and_reads_as_json_dumps(capsys):
    """A 200,000-file report is streamed a MiB at a time (its text is never held whole): the
    bytes are json.dumps' own, names that are not UTF-8 escaped as ever."""
    import json

    from qa2core import cli

    report = {"files": [{"dest": f"qa/plot_{i:06d}.png", "source": "/r/\udce9/x", "bytes": i}
                        for i in range(30_000)], "space": {"needed": 0, "free": 1}}
    cli._emit(report)
    out = capsys.readouterr().out
    assert len(out) > 1 << 20  # more than one piece
    assert out == json.dumps(report, indent=2, ensure_ascii=True) + "\n"
