"""The engine's promises (issue: one pass over the input, one owner for every side effect)."""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import re
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.planning import paths
from qa2core.testing import write_tree
from qa2core.writing import build, journal

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "qa2core"


def _package(toy_pm, src, dst, piscript, **kw):
    return engine.package(src, dst, piscript=piscript, plugins=toy_pm, **kw)


def test_json_readme_bytes_are_the_readme_written(toy_pm, toy_tree, tmp_path, header, piscript):
    dst = tmp_path / "2015.1.00123.S"
    report = _package(toy_pm, toy_tree, dst, piscript, readme_path=header, mode="copy")
    entry = next(f for f in report.to_json()["files"] if f["action"] == "readme")
    assert entry["bytes"] == (dst / entry["dest"]).stat().st_size
    assert entry["bytes"] > header.stat().st_size  # header plus the listing


def test_every_source_entry_is_one_string(toy_pm, toy_tree, tmp_path, piscript):
    report = _package(toy_pm, toy_tree, tmp_path / "2015.1.00123.S", piscript, mode="copy")
    assert {type(f["source"]) for f in report.to_json()["files"]} == {str}


def test_the_journal_is_read_once_per_run(toy_pm, toy_tree, tmp_path, piscript, monkeypatch):
    dst = tmp_path / "2015.1.00123.S"
    _package(toy_pm, toy_tree, dst, piscript, mode="copy")
    calls = []
    real = journal.load
    monkeypatch.setattr(journal, "load", lambda p: calls.append(p) or real(p))
    _package(toy_pm, toy_tree, dst, piscript, mode="copy")
    assert len(calls) == 1


def test_each_directory_is_listed_once_and_a_table_walked_once_more_by_the_copy(
        toy_pm, tmp_path, piscript, monkeypatch):
    src = write_tree(tmp_path / "red", {"toy.marker": "", "a/b/run.py": "x",
                                        "cal.ms/table.dat": "T", "cal.ms/table.f0": "D",
                                        "cal.ms/ANTENNA/table.dat": "A"})
    counts: dict[str, int] = {}
    real = os.scandir

    def counting(path="."):
        if not isinstance(path, int):  # rmtree lists by descriptor: not a source walk
            counts[os.fspath(path)] = counts.get(os.fspath(path), 0) + 1
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    toy_pm.guard = False  # the testing guard lists ORIGPATH around each hook; a run does not
    _package(toy_pm, src, tmp_path / "2015.1.00123.S", piscript, mode="copy", style="cycle0-nopipe")
    plain = [p for p in counts if p.startswith(str(src)) and ".ms" not in p]
    assert plain and all(counts[p] == 1 for p in plain), counts
    table = [p for p in counts if p.startswith(str(src / "cal.ms"))]
    # the scan lists the table once to see table.dat and walks it once; the copy walks it once
    assert table and all(counts[p] <= 3 for p in table), counts
    assert counts[str(src / "cal.ms" / "ANTENNA")] == 2


_FORKED: dict = {}  # what forked workers inherit (the toy plugin cannot be pickled by name)


def _append_group(args):
    barrier, src, dst, piscript, delay = args
    pm = _FORKED["pm"]
    real = build._build_and_swap

    def slow(*a, **k):  # hold the lock a while, so the other process surely meets it
        import time

        time.sleep(delay)
        return real(*a, **k)

    build._build_and_swap = slow
    barrier.wait()
    try:
        report = engine.package(src, dst, piscript=piscript, mode="copy", append="group",
                                plugins=pm)
        return ("ok", report.member)
    except Exception as exc:
        return ("refused", str(exc))


def test_two_concurrent_append_group_runs_never_replace_a_group(toy_pm, toy_tree, tmp_path,
                                                                  piscript):
    dst = tmp_path / "2015.1.00123.S"
    _package(toy_pm, toy_tree, dst, piscript, mode="copy")
    _FORKED["pm"] = toy_pm
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            results = pool.map(_append_group, [(barrier, toy_tree, dst, piscript, 0.5)] * 2)
    ok = [member for status, member in results if status == "ok"]
    refused = [msg for status, msg in results if status == "refused"]
    assert len(ok) + len(refused) == 2 and ok
    assert len(set(ok)) == len(ok), "two runs wrote the same group"
    for msg in refused:
        assert "holds the lock" in msg
    for member in ["sg_ouss_id/group_ouss_id/member_ouss_id", *ok]:
        assert (dst / member / "README").is_file()
        assert (dst / member / "script" / "run.py").read_text() == "print('reduce')\n"


def test_the_append_target_is_decided_under_the_lock(toy_pm, toy_tree, tmp_path, piscript,
                                                     monkeypatch):
    dst = tmp_path / "2015.1.00123.S"
    _package(toy_pm, toy_tree, dst, piscript, mode="copy")
    seen = []
    real = build.ous.target

    def spy(pack, append, uids=None):
        seen.append(paths.lock_file(pack).read_text().strip())
        return real(pack, append, uids)

    monkeypatch.setattr(build.ous, "target", spy)
    _package(toy_pm, toy_tree, dst, piscript, mode="copy", append="group")
    assert seen and all(f"pid {os.getpid()}@" in holder for holder in seen)


# ---------------------------------------------------------------------------- the code itself


def _runtime_modules() -> list[Path]:
    """Every module the qa2 command runs (the testing helpers and templates are not run by it)."""
    return sorted(p for p in CORE.rglob("*.py")
                  if not {"testing", "templates"} & set(p.relative_to(CORE).parts))


def test_the_package_is_laid_out_by_stage():
    """Folders show the flow (docs/architecture.md): the plugin interface, planning, writing,
    delivery checks, data, batch. Only the entry points and shared vocabulary stay on top."""
    top = sorted(p.stem for p in CORE.glob("*.py"))
    assert top == ["__init__", "_moved", "bulk", "cli", "cli_batch", "cli_examples", "engine", "errors",
                   "inspection", "messages", "plugin", "report"], top
    for folder in ("hooks", "planning", "writing", "checks", "data", "batch"):
        assert (CORE / folder / "__init__.py").read_text().startswith('"""'), folder


def test_runtime_core_stays_small():
    """The hook manual and the manager stay short; every runtime module stays readable in one
    sitting. (The 2,800-line total the engine issue aimed at was not met: docs/architecture.md
    says why and what the total is.)"""
    lines = {p.name: len(p.read_text().splitlines()) for p in _runtime_modules()}
    assert lines["hookspecs.py"] <= 150
    assert lines["manager.py"] <= 200
    assert max(lines.values()) <= 520, lines


def test_runtime_core_never_imports_the_testing_package_at_module_level():
    for path in _runtime_modules():
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: the selftest command imports it lazily
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                    [a.name for a in node.names]
                assert not any("testing" in n or "casatools" in n for n in names), path


def test_one_uid_pattern_in_the_code():
    hits = []
    for path in [*CORE.rglob("*.py"), *REPO.glob("plugins/*/src/**/*.py")]:
        hits += [f"{path}:{m.start()}" for m in re.finditer(r"uid___A\\d\{3\}", path.read_text())]
    assert len(hits) == 1, hits


def test_every_reference_points_inside_the_repository():
    outside = re.compile(r"\.\./shared|(?<![\w/])(domain|peers|contract)\.md")
    offenders = []
    for path in [*REPO.glob("qa2core/**/*.py"), *REPO.glob("plugins/*/src/**/*.py"),
                 *REPO.glob("plugins/*/README.md"), *REPO.glob("docs/*.md"), REPO / "README.md"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for m in outside.finditer(line):
                if path.parent.name == "docs" and m.group(0) != "../shared":
                    continue  # docs/ cite their siblings by bare name
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_json_report_is_plain_json(toy_pm, toy_tree, tmp_path, piscript):
    report = _package(toy_pm, toy_tree, tmp_path / "2015.1.00123.S", piscript, mode="hard")
    assert json.loads(json.dumps(report.to_json()))["plugin"] == "toy"


@pytest.mark.parametrize("mode", ["fake", "copy"])
def test_bookkeeping_lives_beside_packpath(toy_pm, toy_tree, tmp_path, piscript, mode):
    dst = tmp_path / "2015.1.00123.S"
    _package(toy_pm, toy_tree, dst, piscript, mode=mode)
    top = sorted(p.name for p in dst.iterdir())
    assert top == (["manifest-sha256.txt", "sg_ouss_id"] if mode == "copy" else ["sg_ouss_id"])
    assert paths.journal_file(dst).is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(dst.name)) == [
        dst.name, dst.name + ".qa2", dst.name + ".ticket.zip"]


def test_every_module_of_0_2_imports_at_its_old_path_as_the_same_module():
    """Plugins written for 0.2 import e.g. ``qa2core.styles`` or ``from qa2core import tgzcheck``."""
    import importlib

    from qa2core._moved import NEW_NAME

    for old, new in NEW_NAME.items():
        module = importlib.import_module(old)
        assert module is importlib.import_module(new), old
        assert module.__spec__.name == new and module.__name__ == new, old
        parent, _, leaf = old.rpartition(".")
        assert getattr(importlib.import_module(parent), leaf) is module, old


def test_a_run_collects_garbage_less_often_and_gives_the_callers_thresholds_back(
        toy_pm, toy_tree, tmp_path, piscript, monkeypatch):
    """Planning 200,000 files makes millions of objects that live to the end: the collector
    walked them a quarter of fake mode's time (qa2core.bulk). An API caller's process keeps its
    own settings, after a refused run too."""
    import gc

    from qa2core import bulk
    from qa2core.checks import verify as verifying
    from qa2core.errors import Qa2Error

    seen = []
    real_scan = engine.scan
    monkeypatch.setattr(engine, "scan", lambda root: (seen.append(gc.get_threshold()), real_scan(root))[1])
    caller = (1234, 11, 12)
    before = gc.get_threshold()
    gc.set_threshold(*caller)
    try:
        _package(toy_pm, toy_tree, tmp_path / "2015.1.00123.S", piscript)
        assert seen == [bulk.THRESHOLDS] and gc.get_threshold() == caller
        verifying.verify(tmp_path / "2015.1.00123.S", plugins=toy_pm)
        assert gc.get_threshold() == caller
        with pytest.raises(Qa2Error):
            engine.package(tmp_path / "missing", tmp_path / "p2", plugins=toy_pm)
        assert gc.get_threshold() == caller
    finally:
        gc.set_threshold(*before)
