"""A PPR whose <AsdmDiskName> elements are not written literally (xmlns=""): scriptForPI matches
the literal tag, so the PI's re-run would find no EB."""

from __future__ import annotations

import io

from qa2_pipeline import plugin, ppr

from qa2core import Level, Mode, PackageView
from qa2core.planning.styles import resolve_style
from qa2core.testing.sampledata import pipeline_ppr_xml

EBS = ("uid___A002_Xba0af7_X6409", "uid___A002_Xba0af7_X6ac1")


def _ppr(xmlns_empty: bool) -> bytes:
    text = pipeline_ppr_xml(proposal="2016.1.01435.S", ous="uid___A001_X87c_X69",
                            sb_status="uid___A001_X87c_X6a", ebs=EBS, namespace=True)
    if xmlns_empty:
        text = text.replace("<AsdmDiskName>", '<AsdmDiskName xmlns="">')
    return text.encode()


def _tag_findings(data: bytes):
    content = {"script/PPR_uid___A001_X87c_X6a.xml": data}
    view = PackageView(tuple(content), resolve_style("cycle4-pipe"), "pipeline", Mode.COPY,
                       open=lambda p: io.BytesIO(content[p]) if p in content else None)
    return [f for f in plugin.qa2_validate(view=view, context=None) if f.rule == "script.ppr_asdm_tag"]


def test_asdm_disk_names_with_an_empty_xmlns_are_warned():
    assert ppr.parse(_ppr(True)).asdms == EBS  # XML readers see them...
    assert ppr.parse(_ppr(True)).unliteral_asdms == 2  # ...scriptForPI's literal match does not
    (finding,) = _tag_findings(_ppr(True))
    assert finding.level is Level.WARN and 'xmlns=""' in finding.message
    assert "finds no EBs" in finding.message


def test_literal_asdm_disk_names_pass():
    assert ppr.parse(_ppr(False)).unliteral_asdms == 0
    assert _tag_findings(_ppr(False)) == []
