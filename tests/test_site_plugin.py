"""An ARC's site plugin: pip-installed, it shows in `qa2 plugins` and takes part in detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qa2core.testing import write_tree

QA2 = Path(sys.executable).with_name("qa2")

SITE_PLUGIN = {
    "pyproject.toml": """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
[project]
name = "qa2-eso-site"
version = "0.3"
dependencies = []
[project.entry-points.qa2]
esosite = "qa2_eso_site"
""",
    "qa2_eso_site.py": """
from qa2_interferometric import plugin as base

from qa2core import OVERRIDE, Claim, hookimpl

# Extends the interferometric plugin by delegation: its claim's context, collect, layout and
# validate rules all come along.

@hookimpl
def qa2_detect(delivery):
    if "ESO_ARC_RUN.txt" in delivery.names():
        inner = base.qa2_detect(delivery=delivery)
        return Claim(OVERRIDE, "ESO ARC run marker", context=inner.context if inner else None)

@hookimpl
def qa2_collect(delivery, context):
    return base.qa2_collect(delivery=delivery, context=context)

@hookimpl
def qa2_layout(delivery, collected, context):
    return base.qa2_layout(delivery=delivery, collected=collected, context=context)

@hookimpl
def qa2_validate(view, context):
    return base.qa2_validate(view=view)
""",
}


def test_pip_installed_site_plugin_is_listed_and_detected(tmp_path):
    project = write_tree(tmp_path / "site", SITE_PLUGIN)
    target = tmp_path / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(project)], check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    listed = json.loads(subprocess.run([QA2, "plugins", "--json"], env=env, check=True,
                                       capture_output=True, text=True).stdout)["plugins"]
    site = next(p for p in listed if p["name"] == "esosite")
    assert site["distribution"] == "qa2-eso-site" and site["version"] == "0.3"
    red = write_tree(tmp_path / "red", {"ESO_ARC_RUN.txt": "",
                                        "uid___A002_X1_X2.ms.scriptForCalibration.py": "#"})
    out = subprocess.run([QA2, "detect", red], env=env, capture_output=True, text=True)
    assert out.stdout.split()[0] == "esosite"
    assert "interferometric" in out.stdout  # the other claim is still shown
