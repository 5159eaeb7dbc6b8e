"""One survey and one PPR read per run: the context qa2_detect returns carries them to the other
hooks; problems of the input travel in qa2_collect's Collection; archives are streamed."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from qa2_pipeline import context, plugin, ppr, survey

from qa2core import Action, Collection, Level, Mode, PackageView, Purpose
from qa2core.planning.styles import resolve_style

M4 = "uid___A001_X87c_X69"


@pytest.fixture
def counted(monkeypatch):
    """Count surveys and PPR parses (every PPR read ends in ppr.parse)."""
    calls = {"parse": 0, "survey": 0}
    parse, surveyed = ppr.parse, survey.survey

    def counting_parse(data: bytes):
        calls["parse"] += 1
        return parse(data)

    def counting_survey(delivery):
        calls["survey"] += 1
        return surveyed(delivery)

    monkeypatch.setattr(ppr, "parse", counting_parse)
    monkeypatch.setattr(survey, "survey", counting_survey)
    monkeypatch.setattr(plugin, "survey", counting_survey)
    monkeypatch.setattr(context, "survey", counting_survey)
    return calls


def _planned_view(delivery, placements, purpose: Purpose) -> PackageView:
    """The member directory as planned, content streamed from the sources (as the core does)."""
    sources = {p.dest: delivery.root / p.sources[0] for p in placements
               if p.action is Action.COPY and len(p.sources) == 1}

    def open_(dest: str):
        path = sources.get(dest)
        return path.open("rb") if path is not None and path.is_file() else None

    return PackageView(tuple(sorted(p.dest for p in placements)), delivery.style, "pipeline",
                       mode=Mode.COPY, purpose=purpose, open=open_)


def _run_hooks(delivery) -> tuple[Collection, list, object, list]:
    """What the core does with the winner, hook by hook, handing back the claim's context."""
    claim = plugin.qa2_detect(delivery=delivery)
    context = claim.context
    collection = plugin.qa2_collect(delivery=delivery, context=context)
    kept = [c for c in collection.items if not c.skip and c.kind != "unclassified"]
    placements = plugin.qa2_layout(delivery=delivery, collected=kept, context=context)
    uids = plugin.qa2_ous_uids(delivery=delivery, context=context)
    view = _planned_view(delivery, placements, delivery.options.purpose)
    findings = plugin.qa2_validate(view=view, context=context)
    return collection, placements, uids, findings


@pytest.mark.parametrize("name", ["cycle4", "cycle2", "cycle5", "tp", "tp2017", "sb"])
@pytest.mark.parametrize("purpose", [Purpose.STAGE, Purpose.PACKAGE])
def test_one_survey_and_one_ppr_parse_per_run(runs, lib, counted, name, purpose):
    run = runs[name]
    style = "" if purpose is Purpose.STAGE else "cycle4-pipe"
    collection, placements, uids, findings = _run_hooks(lib.deliver(run.root, style, purpose))
    assert counted == {"parse": 1, "survey": 1}
    errors = {f.rule for f in (*collection.findings, *findings) if f.level is Level.ERROR}
    calibration_only = name in ("cycle2", "sb") and purpose is Purpose.PACKAGE  # nobody imaged
    assert errors == ({"script.imaging"} if calibration_only else set())
    assert any(p.dest.startswith("script/") and "PPR" in p.dest for p in placements)
    assert uids is not None and uids.member == run.mous  # what --ous-uids auto gets


def test_input_problems_come_with_collect_not_validate(runs, lib, copy_run, tmp_path, counted):
    run = copy_run(runs["cycle4"])
    xml = lib.ppr_xml(proposal=run.project, ous="uid___A001_X87c_X99",
                      sb_status="uid___A001_X87c_X6a", ebs=run.ebs)
    (run.products / "PPR_uid___A001_X87c_X6a.xml").write_text(xml)
    collection, _, _, findings = _run_hooks(lib.deliver(run.root, "", Purpose.STAGE))
    rules = {(f.level, f.rule) for f in collection.findings}
    assert (Level.WARN, "run.mous") in rules and (Level.INFO, "run.ous_uids") in rules
    assert not {f.rule for f in findings} & {"run.mous", "run.ous_uids"}
    assert counted["parse"] == 1


def test_refused_input_says_why_in_collect(runs, lib, copy_run):
    import shutil

    run = copy_run(runs["cycle4"])
    shutil.copytree(run.root / run.tree, (run.root / run.tree).parent / "MOUS_uid___A001_X87c_X70")
    delivery = lib.deliver(run.root, "", Purpose.STAGE)
    claim = plugin.qa2_detect(delivery=delivery)
    collection = plugin.qa2_collect(delivery=delivery, context=claim.context)
    assert [f.rule for f in collection.findings if f.level is Level.ERROR] == ["run.trees"]
    assert all(c.skip.startswith("not packaged: the input is refused") for c in collection.items)


def test_staging_a_staged_tree_is_refused_in_collect(lib, make_tree):
    member = "sg_ouss_id/group_ouss_id/member_ouss_id"
    root = make_tree({f"{member}/script/PPR_uid___A001_X87c_X6a.xml": "<SciPipeRequest/>"})
    delivery = lib.deliver(root, "", Purpose.STAGE)
    claim = plugin.qa2_detect(delivery=delivery)
    collection = plugin.qa2_collect(delivery=delivery, context=claim.context)
    assert "stage.staged_input" in {f.rule for f in collection.findings if f.level is Level.ERROR}


def test_verify_uses_the_context_of_detect_on_the_package(runs, lib, tmp_path, counted):
    """qa2 verify: detect on the package tree (purpose VERIFY), validate each member with that
    claim's context; the member's PPR is parsed once, content read through view.open."""
    run = runs["cycle4"]
    delivery = lib.deliver(run.root, "cycle4-pipe", Purpose.PACKAGE)
    claim = plugin.qa2_detect(delivery=delivery)
    collection = plugin.qa2_collect(delivery=delivery, context=claim.context)
    kept = [c for c in collection.items if not c.skip and c.kind != "unclassified"]
    placements = plugin.qa2_layout(delivery=delivery, collected=kept, context=claim.context)
    member = tmp_path / "2016.1.01435.S" / "science_goal.x/group.y/member.z"
    for p in placements:  # a package on disk, written by hand
        dest = member / p.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        if p.action is Action.EMPTY:
            dest.write_bytes(b"")
        else:
            dest.write_bytes((delivery.root / p.sources[0]).read_bytes()
                             if p.action is Action.COPY else b"compressed")
    counted["parse"] = 0
    counted["survey"] = 0

    package = lib.deliver(tmp_path / "2016.1.01435.S", purpose=Purpose.VERIFY)
    context = plugin.qa2_detect(delivery=package).context
    files = tuple(sorted(p.relative_to(member).as_posix() for p in member.rglob("*") if p.is_file()))
    opened: list[str] = []

    def open_(path: str):
        opened.append(path)
        return (member / path).open("rb")

    view = PackageView(files, resolve_style("cycle4-pipe"), "pipeline", mode=Mode.COPY,
                       purpose=Purpose.PACKAGE, open=open_)
    assert plugin.qa2_validate(view=view, context=context) == []
    assert counted == {"parse": 1, "survey": 1}
    assert "script/PPR_uid___A001_X87c_X6a.xml" in opened  # content at hand: checked


def test_whole_package_run_parses_the_ppr_once(pm, runs, tmp_path, counted):
    """End to end through qa2core.engine: detect, collect, layout, ous_uids and validate."""
    from qa2core import engine

    run = runs["cycle4"]
    report = engine.package(run.root, tmp_path / "2016.1.01435.S", style="cycle4-pipe",
                            mode="copy", piscript=run.piscript, readme_path=run.readme, plugins=pm)
    assert report.plugin == "pipeline"
    assert counted == {"parse": 1, "survey": 1}


def test_whole_stage_run_parses_the_ppr_once(pm, runs, tmp_path, counted):
    from qa2core import engine

    run = runs["cycle4"]
    engine.stage(run.root, tmp_path / "S", piscript=run.piscript, plugins=pm)
    assert counted == {"parse": 1, "survey": 1}


# ---------------------------------------------------------------------------- streaming


class _SmallReads(io.RawIOBase):
    """A file that refuses whole reads: read() without a size, or more than 1 MiB at once."""

    LIMIT = 1 << 20

    def __init__(self, path: Path) -> None:
        self._fh = path.open("rb")
        self.largest = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self.LIMIT:
            raise AssertionError(f"read({size}): a whole-file read of a product")
        self.largest = max(self.largest, size)
        return self._fh.read(size)

    def readinto(self, buffer) -> int:
        data = self.read(min(len(buffer), self.LIMIT))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _big_weblog(path: Path, size: int, stray: str) -> Path:
    """A weblog tgz with ``size`` bytes of zeros in one member, then a stray member after it."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data_size in (("pipeline-20170124T142630/html/index.html", 0),
                                ("pipeline-20170124T142630/html/stage1/big.bin", size),
                                (stray, 0)):
            info = tarfile.TarInfo(name)
            info.size = data_size
            tar.addfile(info, io.BufferedReader(_Zeros(data_size), 1 << 16))
    return path


def test_weblog_is_streamed_not_read_whole(view_of_weblog):
    path, streams, check = view_of_weblog
    tracemalloc.start()
    try:
        findings = check()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stray = [f for f in findings if f.rule == "qa.weblog_members"]
    assert stray and "notes/readme.txt" in stray[0].message  # read past the 200 MB member
    assert streams and all(s.closed for s in streams)
    assert max(s.largest for s in streams) <= _SmallReads.LIMIT
    assert peak < 50 << 20, f"peak {peak >> 20} MiB for a {path.stat().st_size} B weblog"


@pytest.fixture(scope="module")
def big_weblog(tmp_path_factory) -> Path:
    return _big_weblog(tmp_path_factory.mktemp("weblog") / f"{M4}.weblog.tgz", 200 << 20,
                       "notes/readme.txt")


@pytest.fixture
def view_of_weblog(big_weblog):
    streams: list[_SmallReads] = []
    weblog = f"qa/{M4}.weblog.tgz"

    def open_(path: str):
        if path != weblog:
            return None
        streams.append(_SmallReads(big_weblog))
        return streams[-1]

    files = (weblog, "script/PPR_uid___A001_X87c_X6a.xml", "script/casa_piperestorescript.py")
    view = PackageView(files, resolve_style("cycle4-pipe"), "pipeline", mode=Mode.COPY,
                       purpose=Purpose.STAGE, open=open_)
    return big_weblog, streams, lambda: plugin.qa2_validate(view=view, context=None)


def test_weblog_not_at_hand_is_skipped_silently(lib):
    weblog = f"qa/{M4}.weblog.tgz"
    view = PackageView((weblog,), resolve_style("cycle4-pipe"), "pipeline", mode=Mode.FAKE,
                       purpose=Purpose.STAGE)  # open: the default, content never at hand
    rules = {f.rule for f in plugin.qa2_validate(view=view, context=None)}
    assert not rules & {"qa.weblog", "qa.weblog_tar", "qa.weblog_members"}


def test_plugin_has_no_uid_regex_of_its_own():
    src = Path(plugin.__file__).parent
    assert not [p.name for p in src.glob("*.py") if "uid___A\\d" in p.read_text()]
