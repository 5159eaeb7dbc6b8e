"""The CASA-session API keeps the original names and raises on problems."""

from __future__ import annotations

import pytest

from QA2_Packaging_module import Qa2Error, QA_Packager
from qa2core.testing import files_below, tree_state


def test_qa_packager_copy(tmp_path, piscript, header):
    from qa2core.testing import write_tree

    src = write_tree(tmp_path / "red", {"uid___A002_X1_X2.ms.scriptForCalibration.py": "#",
                                        "scriptForImaging.py": "#", "x.image.pbcor.fits": "F",
                                        "x.pb.fits": "P"})
    before = tree_state(src)
    report = QA_Packager(origpath=str(src), readme=str(header), packpath=str(tmp_path / "2015.1.00123.S"),
                         PIscript=str(piscript.parent), style="cycle3-nopipe", mode="copy")
    member = tmp_path / "2015.1.00123.S" / report.member
    assert "product/x.pb.fits.gz" in files_below(member)
    assert tree_state(src) == before


def test_qa_packager_raises_with_a_message_naming_the_problem(tmp_path):
    with pytest.raises(Qa2Error, match="does not exist"):
        QA_Packager(origpath=str(tmp_path / "nope"), readme="", packpath=str(tmp_path / "p"))
