"""The pipeline rules of docs/domain.md §8.2–§8.4 on hand-made views, and qa2 verify on real output."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from qa2_pipeline import plugin, ppr

from qa2core import Level, Mode, PackageView, Purpose
from qa2core.hooks import builtin
from qa2core.planning.styles import resolve_style
from qa2core.testing import tree_state

EB1, EB2 = "uid___A002_Xba0af7_X6409", "uid___A002_Xba0af7_X6ac1"
M = "uid___A001_X87c_X69"


@pytest.fixture
def view(lib):
    """A complete Cycle-4 member as planned; ``drop``/``add`` change it; ``open`` streams the
    content (``readable=False``: content not at hand, as in a fake package)."""
    ppr_bytes = lib.ppr_xml(proposal="2016.1.01435.S", ous=M, sb_status="uid___A001_X87c_X6a",
                            ebs=(EB1, EB2)).encode()
    good = {
        "README": b"", "script/scriptForPI.py": b"", "script/PPR_uid___A001_X87c_X6a.xml": ppr_bytes,
        "script/casa_piperestorescript.py": b"", "script/casa_pipescript.py": b"",
        "script/scriptForImaging.py": b"",
        f"calibration/{M}.session_1.caltables.tgz": b"", "calibration/flux.csv": b"",
        **{f"calibration/{eb}.ms.flagversions.tgz": b"" for eb in (EB1, EB2)},
        **{f"calibration/{eb}.ms.calapply.txt": b"" for eb in (EB1, EB2)},
        f"qa/{M}.weblog.tgz": lib.weblog_tgz("20170124T142630"),
        f"log/{M}.casa_commands.log": b"", "log/casa-20170124-142630.log": b"",
        f"product/{M}.NGC_628_sci.spw17.cube.I.pbcor.fits": b"",
        f"product/{M}.NGC_628_sci.spw17.cube.I.pb.fits.gz": b"",
    }

    def make(drop=(), add=None, style="cycle4-pipe", purpose=Purpose.PACKAGE, readable=True):
        content = {k: v for k, v in good.items() if k not in drop} | (add or {})

        def open_(path: str) -> io.BytesIO | None:
            return io.BytesIO(content[path]) if readable and path in content else None

        return PackageView(tuple(sorted(content)), resolve_style(style), "pipeline",
                           mode=Mode.COPY, purpose=purpose, open=open_)

    return make


def rules_of(view: PackageView, level: Level | None = None) -> set[str]:
    return {f.rule for f in plugin.qa2_validate(view=view, context=None)
            if level is None or f.level is level}


def rules_on(view: PackageView, path: str) -> list[str]:
    """The rules of this plugin and the core's that name ``path``, as the core runs both on a
    member (a list: one problem must make one line, not one from each)."""
    return [f.rule for f in (*plugin.qa2_validate(view=view, context=None),
                             *builtin.qa2_validate(view=view)) if f.path == path]


def test_complete_member_passes(view):
    assert rules_of(view()) == set()


def test_validate_has_one_meaning_whoever_packages(view):
    """No ``plugin`` guard any more: the core decides whose validate runs."""
    import inspect

    assert "plugin" not in inspect.signature(plugin.qa2_validate).parameters
    assert "script.ppr" in rules_of(view(drop=("script/PPR_uid___A001_X87c_X6a.xml",)))


@pytest.mark.parametrize(("drop", "rule"), [
    (("script/PPR_uid___A001_X87c_X6a.xml",), "script.ppr"),
    (("script/casa_piperestorescript.py",), "script.restore"),
    (("script/scriptForImaging.py",), "script.imaging"),
    ((f"calibration/{M}.session_1.caltables.tgz",), "calibration.caltables"),
    ((f"calibration/{EB2}.ms.flagversions.tgz",), "calibration.flagversions"),
    ((f"calibration/{EB1}.ms.calapply.txt",), "calibration.calapply"),
    ((f"qa/{M}.weblog.tgz",), "qa.weblog"),
])
def test_missing_pieces_are_errors(view, drop, rule):
    assert rule in rules_of(view(drop=drop), Level.ERROR)


@pytest.mark.parametrize(("add", "rule"), [
    ({"script/PPR_uid___A001_X87c_X6b.xml": b"<SciPipeRequest/>"}, "script.ppr"),
    ({"script/x.casa_piperestorescript.py": b""}, "script.unique"),
    ({f"calibration/{M}.flux.csv": b""}, "calibration.unique"),
    ({"calibration/jyperk.csv": b"", "calibration/x.jyperk.csv": b""}, "calibration.unique"),
    ({f"calibration/{M}.session_2.caltables.tar.gz": b""}, "era.mixed"),
])
def test_duplicates_and_mixed_eras_are_errors(view, add, rule):
    assert rule in rules_of(view(add=add), Level.ERROR)


def test_auxproducts_members_count_for_rule_13(view, lib):
    """scriptForPI >= 1.23 untars every *auxproducts.tgz inside calibration/ before its pipeline
    re-run: its top-level members count with the loose files (docs/domain.md §8.3 rule 13)."""
    aux = f"calibration/{M}.auxproducts.tgz"
    packed = lib.tgz({"flux.csv": b"", "cont.dat": b"", "extra/antennapos.csv": b""})
    found = [f for f in plugin.qa2_validate(view=view(add={aux: packed}), context=None)
             if f.rule == "calibration.unique"]
    assert [f.level for f in found] == [Level.ERROR]  # flux.csv twice; one cont.dat; the
    assert f"(calibration/flux.csv, flux.csv in {aux})" in found[0].message  # subdir is no member
    assert "one of them is lost" in found[0].message and "§8.3 rule 13" in found[0].message
    renamed = view(drop=("calibration/flux.csv",), add={aux: packed, f"calibration/{M}.flux.csv": b""})
    message = next(f.message for f in plugin.qa2_validate(view=renamed, context=None)
                   if f.rule == "calibration.unique")
    assert "stops its pipeline re-run on more than one *flux.csv" in message
    assert rules_of(view(drop=("calibration/flux.csv",), add={aux: packed})) == set()
    # content not at hand (a fake package): only names are counted
    assert "calibration.unique" not in rules_of(view(add={aux: packed}, readable=False))
    # an unreadable one is the core's rule for every archive, said once
    assert rules_on(view(add={aux: b"not a tar"}), aux) == ["archive.unreadable"]


def test_tp_jyperk_inside_auxproducts_counts(view, lib):
    tp_ppr = lib.ppr_xml(proposal="2017.1.00161.L", ous=M, sb_status="uid___A001_X87c_X6a",
                         ebs=(EB1,), recipe="hsd_calimage").encode()
    tp = {"script/PPR_uid___A001_X87c_X6a.xml": tp_ppr,
          f"calibration/{M}.auxproducts.tgz": lib.tgz({"jyperk.csv": b"MS,Antenna\n"})}
    assert "calibration.jyperk" not in rules_of(view(add=tp))
    twice = view(add={**tp, "calibration/jyperk.csv": b""})
    assert "calibration.unique" in rules_of(twice, Level.ERROR)


def test_suffixes_of_two_eras_across_types_warn(view):
    v = view(drop=(f"qa/{M}.weblog.tgz",), add={f"qa/{M}.weblog.tar.gz": b""}, readable=False)
    assert "era.types" in rules_of(v, Level.WARN)


def test_ppr_content(view, lib):
    def with_ppr(data: bytes):
        return view(add={"script/PPR_uid___A001_X87c_X6a.xml": data})

    assert "script.ppr_xml" in rules_of(with_ppr(b"<SciPipeRequest><unclosed>"), Level.ERROR)
    no_ous = lib.ppr_xml(proposal="p", ous=None, sb_status="uid___A001_X87c_X6a", ebs=(EB1, EB2))
    assert "script.ppr_ous" in rules_of(with_ppr(no_ous.encode()), Level.WARN)
    bad = lib.ppr_xml(proposal="p", ous=M, sb_status="uid___A001_X87c_X6a", ebs=("X6409",))
    assert "script.ppr_asdms" in rules_of(with_ppr(bad.encode()), Level.ERROR)


def _weblog_with(*infos: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        page = tarfile.TarInfo("pipeline-20170124T142630/html/index.html")
        tar.addfile(page, io.BytesIO(b""))
        for info in infos:
            tar.addfile(info, io.BytesIO(b"") if info.isreg() else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_weblog_members_outside_html_are_a_warning(view, lib):
    stray = lib.tgz({"pipeline-20170124T142630/html/index.html": b"", "notes/readme.txt": b""})
    findings = view(add={f"qa/{M}.weblog.tgz": stray})
    assert "qa.weblog_members" in rules_of(findings, Level.WARN)
    assert "qa.weblog_members" not in rules_of(findings, Level.ERROR)


def test_a_hand_made_weblog_with_its_parent_directory_entry_is_fine(view):
    by_hand = _weblog_with(_info("pipeline-20170124T142630", tarfile.DIRTYPE),
                           _info("pipeline-20170124T142630/html", tarfile.DIRTYPE))
    assert "qa.weblog_members" not in rules_of(view(add={f"qa/{M}.weblog.tgz": by_hand}))


@pytest.mark.parametrize("member", [
    _info("pipeline-1/html/evil", tarfile.SYMTYPE, "/etc/passwd"),
    _info("pipeline-1/html/up", tarfile.SYMTYPE, "../../../etc"),
    _info("pipeline-1/html/hard", tarfile.LNKTYPE, "../../etc/passwd"),
    _info("pipeline-1/html/dev", tarfile.CHRTYPE),
    _info("pipeline-1/html/fifo", tarfile.FIFOTYPE),
    _info("../outside.html"),
    _info("/abs/path.html"),
])
def test_unsafe_weblog_members_are_one_error(view, member):
    """The core checks every archive a PI unpacks (qa2core.checks.tgzcheck); the weblog gets that one
    line, not a second one from this plugin, nor a stray-member warning for it."""
    weblog = f"qa/{M}.weblog.tgz"
    assert rules_on(view(add={weblog: _weblog_with(member)}), weblog) == ["archive.unsafe"]


def test_links_inside_the_weblog_are_fine(view):
    inside = _weblog_with(_info("pipeline-1/html/hard", tarfile.LNKTYPE, "pipeline-1/html/index.html"),
                          _info("pipeline-1/html/latest", tarfile.SYMTYPE, "stage1/t2-4m.html"))
    assert rules_on(view(add={f"qa/{M}.weblog.tgz": inside}), f"qa/{M}.weblog.tgz") == []


def test_corrupt_weblog_is_one_line(view, lib):
    broken = view(add={f"qa/{M}.weblog.tgz": b"\x1f\x8b\x08\x00garbage" * 50})
    assert rules_on(broken, f"qa/{M}.weblog.tgz") == ["archive.unreadable"]
    lines = [f.line() for f in builtin.qa2_validate(view=broken) if f.rule == "archive.unreadable"]
    assert lines and all("\n" not in line for line in lines)
    # content not available (fake package on disk): only the name is checked
    assert rules_of(view(readable=False)) == set()


def test_tp_needs_no_imaging_script_nor_restore_script(view, lib):
    tp_ppr = lib.ppr_xml(proposal="2013.1.00911.S", ous=M, sb_status="uid___A001_X145_X1a3",
                         ebs=(EB1,), recipe="hsd_calimage").encode()
    v = view(drop=("script/scriptForImaging.py", "script/casa_piperestorescript.py",
                   f"calibration/{EB1}.ms.calapply.txt"),
             add={"script/PPR_uid___A001_X87c_X6a.xml": tp_ppr, "calibration/jyperk.csv": b""})
    assert rules_of(v, Level.ERROR) == set()
    no_jyperk = view(add={"script/PPR_uid___A001_X87c_X6a.xml": tp_ppr})
    assert "calibration.jyperk" in rules_of(no_jyperk, Level.WARN)


def test_non_pipe_style_is_refused_and_no_style_is_fine(view):
    assert "style.pipeline" in rules_of(view(style="cycle3-nopipe"), Level.ERROR)
    assert "style.pipeline" not in rules_of(view(style=""))


def test_staging_does_not_need_an_imaging_script(view):
    assert rules_of(view(drop=("script/scriptForImaging.py",), purpose=Purpose.STAGE)) == set()


def test_manifest_must_name_a_shipped_aux_file(view):
    manifest = (b"<piperesults><ous name='x'><aux_products_file name='x.auxproducts.tgz'/>"
                b"</ous></piperesults>")
    v = view(add={f"script/{M}.hifa_calimage.pipeline_manifest.xml": manifest})
    assert "script.manifest" in rules_of(v, Level.WARN)
    v = view(add={f"script/{M}.hifa_calimage.pipeline_manifest.xml": manifest,
                  "calibration/x.auxproducts.tgz": b""})
    assert "script.manifest" not in rules_of(v)


def test_staging_keeps_pb_images_uncompressed_without_a_core_error(pm, view):
    """The builtin product.compress rule is for packages; a staged tree is not one yet."""
    staged = view(drop=(f"product/{M}.NGC_628_sci.spw17.cube.I.pb.fits.gz",),
                  add={f"product/{M}.NGC_628_sci.spw17.cube.I.pb.fits": b""}, purpose=Purpose.STAGE)
    assert "product.compress" not in {f.rule for f in pm.validate(staged, "pipeline", None)}
    packaged = PackageView(staged.files, staged.style, "pipeline", mode=Mode.COPY,
                           purpose=Purpose.PACKAGE, open=staged.open)
    assert "product.compress" in {f.rule for f in pm.validate(packaged, "pipeline", None)}


def test_ppr_parser_is_namespace_agnostic(lib):
    plain = ppr.parse(lib.ppr_xml(proposal="2016.1.01435.S", ous=M, sb_status="uid___A001_X87c_X6a",
                                  ebs=(EB1, EB2)).encode())
    spaced = ppr.parse(lib.ppr_xml(proposal="2016.1.01435.S", ous=M, sb_status="uid___A001_X87c_X6a",
                                   ebs=(EB1, EB2), namespace=True).encode())
    assert plain == spaced
    assert plain.ous == M and plain.asdms == (EB1, EB2) and plain.recipe == "hifa_calimage"
    assert plain.proposal == "2016.1.01435.S" and not plain.single_dish
    old = ppr.parse(lib.ppr_xml(proposal="p", ous=M, sb_status="uid___A001_X87c_X6a", ebs=(EB1,),
                                recipe="procedure_hifa_cal.xml").encode())
    assert old.recipe == "hifa_cal"
    assert ppr.sanitize("uid://A001/X87c/X69") == M
    with pytest.raises(ValueError):
        ppr.parse(b"<SciPipeRequest>")


def test_ppr_parser_refuses_entity_expansion_and_giants():
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE SciPipeRequest [<!ENTITY l0 "lol">{laughs}]>'
            "<SciPipeRequest><ProposalCode>&l9;</ProposalCode></SciPipeRequest>").encode()
    with pytest.raises(ValueError, match="entit"):
        ppr.parse(bomb)
    with pytest.raises(ValueError, match="MiB"):
        ppr.read_stream(io.BytesIO(b"<SciPipeRequest>" + b" " * ppr.MAX_BYTES))


def test_broken_ppr_content_is_an_error_only_where_content_is_at_hand(view):
    broken = {"script/PPR_uid___A001_X87c_X6a.xml": b"<!ENTITY x 'y'>"}
    assert "script.ppr_xml" in rules_of(view(add=broken), Level.ERROR)
    assert "script.ppr_xml" not in rules_of(view(add=broken, readable=False))


# ---------------------------------------------------------------------------- on disk


def test_qa2_verify_passes_on_what_was_packaged(run_qa2, pm, runs, tmp_path):
    from qa2core import engine

    run = runs["cycle4"]
    before = tree_state(run.root)
    engine.stage(run.root, tmp_path / "STAGED", piscript=run.piscript, pipe_readme=run.readme,
                 plugins=pm)
    staged = tree_state(tmp_path / "STAGED")
    pack = tmp_path / "2016.1.01435.S"
    engine.package(tmp_path / "STAGED", pack, style="cycle4-pipe", mode="copy",
                   piscript=run.piscript, readme_path=run.readme, plugins=pm)
    assert tree_state(run.root) == before
    assert tree_state(tmp_path / "STAGED") == staged
    result = run_qa2("verify", pack, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert report["ok"] and report["plugin"] == "pipeline"
    assert "verify.staged" not in {f["rule"] for f in report["findings"]}  # a package: full rules
    # A second restore script on disk: scriptForPI would abort; verify says why.
    member = pack / report["members"][0]
    (member / "script/uid___A001_X87c_X69.casa_piperestorescript.py").write_text("# again\n")
    result = run_qa2("verify", pack, "--json")
    rules = {(f["level"], f["rule"]) for f in json.loads(result.stdout)["findings"]}
    assert result.exit_code == 1
    assert ("ERROR", "script.unique") in rules and ("ERROR", "manifest.unlisted") in rules


@pytest.mark.parametrize("mode", ["copy", "fake"])
def test_qa2_verify_passes_on_a_staged_tree(run_qa2, pm, runs, tmp_path, mode):
    """A staged tree (the journal says "stage"; in fake mode, its README has no qa2 listing):
    verify checks it as staged (PB images uncompressed, no scriptForImaging.py yet), says so."""
    from qa2core import engine

    run = runs["cycle4"]
    staged = tmp_path / "2016.1.01435.S"
    engine.stage(run.root, staged, mode=mode, piscript=run.piscript, plugins=pm)
    before = tree_state(staged)
    result = run_qa2("verify", staged, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert "verify.staged" in {f["rule"] for f in report["findings"]}
    assert tree_state(staged) == before


def test_run_offers_its_real_ous_names(pm, runs, tmp_path):
    from qa2core import engine

    run = runs["cycle4"]
    before = tree_state(run.root)
    report = engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    assert tree_state(run.root) == before
    hint = next(f for f in report.findings if f.rule == "run.ous_uids")
    assert hint.level is Level.INFO
    assert hint.message.endswith(
        "package it with --ous-uids uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69")
    assert report.member == "sg_ouss_id/group_ouss_id/member_ouss_id"  # placeholders, as JAO's


def test_staged_tree_with_real_names_keeps_them(pm, runs, tmp_path, lib):
    from qa2core import engine

    run = runs["cycle4"]
    uids = "uid___A001_X87c_X67,uid___A001_X87c_X68,uid___A001_X87c_X69"
    first = tmp_path / "a" / "2016.1.01435.S"
    first.parent.mkdir()
    engine.package(run.root, first, style="cycle4-pipe", mode="copy", piscript=run.piscript,
                   ous_uids=uids, plugins=pm)
    before = tree_state(first)
    second = tmp_path / "b" / "2016.1.01435.S"
    second.parent.mkdir()
    report = engine.package(first, second, style="cycle4-pipe", mode="copy", piscript=run.piscript,
                            ous_uids="auto", plugins=pm)
    assert tree_state(first) == before
    assert report.member == ("science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/"
                             "member.uid___A001_X87c_X69")
    # without the option, the placeholders: the default everywhere (docs/contract.md)
    third = tmp_path / "c" / "2016.1.01435.S"
    third.parent.mkdir()
    report = engine.package(first, third, style="cycle4-pipe", mode="copy", piscript=run.piscript,
                            plugins=pm)
    assert report.member == "sg_ouss_id/group_ouss_id/member_ouss_id"


def test_plugin_is_installed_through_its_entry_point(run_qa2):
    listed = json.loads(run_qa2("plugins", "--json").stdout)["plugins"]
    mine = next(p for p in listed if p["name"] == "pipeline")
    assert mine["distribution"] == "qa2-pipeline"
    assert {"qa2_detect", "qa2_collect", "qa2_layout", "qa2_validate", "qa2_ous_uids"} <= set(mine["hooks"])


def test_two_selfcal_files_are_refused_from_cycle_10_on(view):
    """scriptForPI 2.5 stops on more than one *selfcal.json (Style.unique_selfcal)."""
    two = {"calibration/a.selfcal.json": b"{}", "calibration/b.selfcal.json": b"{}"}
    assert "calibration.unique" in rules_of(view(add=two, style="cycle10-pipe"), Level.ERROR)
    assert "calibration.unique" not in rules_of(view(add=two, style="cycle5-pipe"))
    one = {"calibration/a.selfcal.json": b"{}"}
    assert "calibration.unique" not in rules_of(view(add=one, style="cycle10-pipe"))


def test_a_modern_manifest_must_name_files_calibration_holds(view):
    manifest = (b'<piperesults><ous name="M"><session name="session_1"><caltables name="gone.tgz"/>'
                b'</session><aux_products_file datatype="auxproducts" name="aux.tgz"/></ous>'
                b'</piperesults>')
    add = {"script/m.pipeline_manifest.xml": manifest, "member.uid___A001_X87c_X69.README.txt": b""}
    lines = [f for f in plugin.qa2_validate(view=view(add=add, drop=("README",),
                                                      style="cycle5-pipe"), context=None)
             if f.rule == "script.manifest"]
    assert {(f.level, f.message) for f in lines} == {
        (Level.ERROR, "names caltables gone.tgz, which is not in calibration/"),
        (Level.ERROR, "names aux_products_file aux.tgz, which is not in calibration/"),
        (Level.ERROR, "aux_products_file: 'name' is not its first attribute, so scriptForPI does "
                      "not unpack it")}
    old = [f.level for f in plugin.qa2_validate(view=view(add={"script/m.pipeline_manifest.xml": manifest}),
                                                context=None) if f.rule == "script.manifest"]
    assert old and set(old) == {Level.WARN}  # before Cycle 5 a manifest is only advice
