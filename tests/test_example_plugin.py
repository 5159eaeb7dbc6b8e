"""An ARC's site plugin, pip-installed: examples/arc-site-plugin in a scratch directory.

Installed with ``pip install --target`` (the ``qa2`` of this venv sees it through PYTHONPATH),
it shows in ``qa2 plugins`` with its distribution, claims a marked reduction over the
interferometric plugin in ``qa2 detect``, packages a real reduction with its site note in
``qa2 package``, and the package passes ``qa2 verify`` under it. Removing the directory
uninstalls it. The example's own installed-only test runs against the same install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa2core.testing import write_tree

QA2 = Path(sys.executable).with_name("qa2")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arc-site-plugin"
VERSION = re.search(r'^version = "(.+)"', (EXAMPLE / "pyproject.toml").read_text(), re.M)[1]
CAL = "uid___A002_X1_X2.ms.scriptForCalibration.py"
NOTE = "ARC: EU ARC node (scratch install)\n"


def _qa2(*args, env, check=True) -> subprocess.CompletedProcess:
    out = subprocess.run([QA2, *map(str, args)], env=env, capture_output=True, text=True)
    assert not check or out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def site_env(tmp_path_factory):
    """The environment of a ``qa2`` that has the example installed; uninstalled afterwards."""
    scratch = tmp_path_factory.mktemp("arc-site")
    project = shutil.copytree(EXAMPLE, scratch / "project",  # the build writes beside the source
                              ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = scratch / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(project)], check=True)
    path = os.pathsep.join(filter(None, (str(target), os.environ.get("PYTHONPATH"))))
    yield {**os.environ, "PYTHONPATH": path}
    shutil.rmtree(target)  # the uninstall: nothing of it was written anywhere else


def test_qa2_plugins_lists_it_with_its_distribution(site_env):
    listed = {p["name"]: p for p in json.loads(_qa2("plugins", "--json", env=site_env).stdout)["plugins"]}
    site = listed["arcsite"]
    assert (site["distribution"], site["version"], site["error"]) == ("qa2-arc-example", VERSION, "")
    assert set(site["hooks"]) == {"qa2_detect", "qa2_collect", "qa2_layout", "qa2_validate",
                                  "qa2_ous_uids"}
    assert "interferometric" in listed  # the plugin it wraps is still there, unchanged
    line = next(ln for ln in _qa2("plugins", env=site_env).stdout.splitlines()
                if ln.startswith("arcsite"))
    assert f"qa2-arc-example {VERSION}" in line


def test_qa2_detect_names_it_on_a_marked_reduction_only(site_env, tmp_path):
    marked = write_tree(tmp_path / "marked", {"ARC_SITE.txt": NOTE, CAL: "#"})
    out = _qa2("detect", marked, env=site_env).stdout
    assert out.split()[0] == "arcsite"
    assert "also: interferometric (score 80)" in out  # the other claim is still shown
    claims = json.loads(_qa2("detect", "--json", marked, env=site_env).stdout)["claims"]
    assert [(c["plugin"], c["score"]) for c in claims] == [("arcsite", 90), ("interferometric", 80)]
    plain = write_tree(tmp_path / "plain", {CAL: "#"})
    assert _qa2("detect", plain, env=site_env).stdout.split()[0] == "interferometric"


def test_qa2_package_and_verify_a_real_reduction(site_env, tmp_path):
    if importlib.util.find_spec("casatools") is None:  # importing it here would skip its config
        pytest.skip("the real sample needs casatools (make bootstrap)")
    from qa2core.testing.sampledata import build_manual_reduction

    sample = build_manual_reduction(tmp_path / "reduction")
    (sample.root / "ARC_SITE.txt").write_text(NOTE)
    dst = tmp_path / sample.project
    report = json.loads(_qa2("package", sample.root, dst, "--readme", sample.readme_header,
                             "--piscript", sample.piscript, "--style", "cycle3-nopipe",
                             "--mode", "copy", "--json", env=site_env).stdout)
    assert report["plugin"] == "arcsite"
    member = dst / report["member"]
    assert (member / "qa" / "arc_site_note.txt").read_text() == NOTE
    assert (member / "script" / f"{sample.ebs[0]}.ms.scriptForCalibration.py").is_file()
    checked = json.loads(_qa2("verify", "--json", dst, env=site_env).stdout)
    assert checked["ok"] and checked["plugin"] == "arcsite", checked["findings"]


def test_the_examples_installed_test_passes_against_the_install(site_env):
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "installed",
                          str(EXAMPLE / "tests")], env=site_env, capture_output=True, text=True)
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout + out.stderr


def test_the_scratch_install_leaves_this_environment_alone(site_env):
    env = {k: v for k, v in site_env.items() if k != "PYTHONPATH"}
    listed = json.loads(_qa2("plugins", "--json", env=env).stdout)["plugins"]
    assert "arcsite" not in {p["name"] for p in listed}
