"""Walking the input (issue 17 item 10): iterative, each directory listed once by (device, inode),
one rule for broken links inside tables and out, loops refused (docs/contract.md, "Symbolic
links in ORIGPATH")."""

from __future__ import annotations

import os
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa2core import engine
from qa2core.errors import Qa2Error
from qa2core.planning import walk
from qa2core.planning.scan import scan
from qa2core.testing import write_tree
from qa2core.writing import fileops

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
MANUAL = {  # enough for the interferometric plugin to claim it (as in tests/test_cli.py)
    "Calibration_X2/uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "Imaging/scriptForImaging.py": "# imaging\n",
    "Imaging/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "Imaging/target.pb.fits": bytes(2880),
    "casa-20160101-000000.log": "log\n",
}
TABLE = {"table.dat": "T", "table.info": "Type = Image\n", "table.f0": "pixels"}


@pytest.fixture
def listings(monkeypatch) -> Counter:
    """Every directory listing a walk makes, counted by (device, inode)."""
    seen: Counter = Counter()
    real = os.scandir

    def counting(path="."):
        st = os.stat(path)
        seen[(st.st_dev, st.st_ino)] += 1
        return real(path)

    monkeypatch.setattr(walk.os, "scandir", counting)
    return seen


def fan_out(base: Path, levels: int) -> Path:
    """``base/L0 … L{levels}``, each level holding two links (``a``, ``b``) to the one below,
    and a file at the bottom: 2**levels paths reach it."""
    for k in range(levels + 1):
        (base / f"L{k}").mkdir(parents=True)
    for k in range(levels):
        for name in ("a", "b"):
            (base / f"L{k}" / name).symlink_to(f"../L{k + 1}")
    (base / f"L{levels}" / "bottom.txt").write_text("deep\n")
    return base


def nested(base: Path, depth: int, name: str = "d") -> Path:
    """``depth`` nested directories below ``base``, made relative to a descriptor (the full path
    may pass PATH_MAX); a file at the bottom. Returns the top one."""
    top = base / name
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    return top


def remove_nested(base: Path, depth: int, name: str = "d") -> None:
    """Undo :func:`nested` without recursion (shutil.rmtree recurses per level on 3.11)."""
    fds = [os.open(base, os.O_RDONLY | os.O_DIRECTORY)]
    for _ in range(depth):
        try:
            fds.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        except FileNotFoundError:
            break
    for i in range(len(fds) - 1, 0, -1):
        for entry in os.listdir(fds[i]):
            if entry != name:
                os.unlink(entry, dir_fd=fds[i])
        os.close(fds[i])
        os.rmdir(name, dir_fd=fds[i - 1])
    os.close(fds[0])


# ---------------------------------------------------------------------------- fan-out links


def test_fan_out_links_are_listed_once_per_directory(tmp_path, listings):
    root = write_tree(tmp_path / "red", {"notes.txt": "x"})
    fan_out(root / "fan", 24)  # 2**24 paths to the bottom: minutes before
    items, warnings = scan(root)
    assert max(listings.values()) == 1  # each directory listed once
    assert len(listings) == 2 + 25  # root, fan, L0 … L24
    # the bottom at its own place and through each link to its level; nothing further down
    assert [i.relpath for i in items] == ["fan/L23/a/bottom.txt", "fan/L23/b/bottom.txt",
                                          "fan/L24/bottom.txt", "notes.txt"]
    # the links inside a level reached through a link: left out there, named once each
    assert len(warnings) == 2 * 23 and all("followed at its own place" in w for w in warnings)


def test_fan_out_links_nested_in_real_directories_cost_a_subtree_per_link(tmp_path, listings):
    """Each level ``d{k}`` holds the real ``d{k+1}`` and two links to it: the scan is
    3**24 paths long when links are followed blindly, here one listing per directory."""
    root = write_tree(tmp_path / "red", {"notes.txt": "x"})
    level = root
    for k in range(24):
        (level / f"d{k}").mkdir()
        for name in ("x", "y"):
            (level / name).symlink_to(f"d{k}")
        level = level / f"d{k}"
    (level / "bottom.txt").write_text("deep\n")
    items, _ = scan(root)
    assert max(listings.values()) == 1 and len(listings) == 25
    bottoms = [i.relpath for i in items if i.name == "bottom.txt"]
    assert len(bottoms) == 1 + 2 * 24  # the real path, and one per link: linear
    assert "/".join(f"d{k}" for k in range(24)) + "/bottom.txt" in bottoms
    assert "x/" + "/".join(f"d{k}" for k in range(1, 24)) + "/bottom.txt" in bottoms


def test_fan_out_links_inside_a_table_walk_linearly(tmp_path, listings):
    table = write_tree(tmp_path / "red" / "x.image", TABLE)
    fan_out(table / "fan", 24)
    tree = fileops.walk_tree(str(table), str(tmp_path / "red"), [], [])
    assert max(listings.values()) == 1
    files = [e.rel for e in tree if not e.is_dir]
    assert files == ["fan/L23/a/bottom.txt", "fan/L23/b/bottom.txt", "fan/L24/bottom.txt",
                     "table.dat", "table.f0", "table.info"]


def test_fan_out_dry_run_through_the_command(run_qa2, tmp_path):
    root = write_tree(tmp_path / "reduction", MANUAL)
    fan_out(root / "Imaging" / "fan", 24)
    r = run_qa2("package", root, tmp_path / "2015.1.00123.S", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert "internal error" not in r.stderr
    assert not (tmp_path / "2015.1.00123.S").exists()


# ---------------------------------------------------------------------------- deep nesting


@pytest.fixture(scope="module", params=[1500, 5000])
def deep(request, tmp_path_factory):
    """A reduction with ``depth`` nested directories, once plain (``Imaging/d/d/…``) and once
    inside an image (``Imaging/deep.image/d/d/…``). Past about 2,000 levels the paths outgrow
    PATH_MAX (4,096 bytes on Linux): the OS refuses them, and so must qa2, by name."""
    depth = request.param
    root = write_tree(tmp_path_factory.mktemp(f"deep{depth}") / "reduction",
                      {**MANUAL, **{f"Imaging/deep.image/{k}": v for k, v in TABLE.items()}})
    table = root / "Imaging" / "deep.image"
    nested(root / "Imaging", depth)
    nested(table, depth)
    yield root, table, depth, len(str(table)) + 2 * depth < 4096
    remove_nested(root / "Imaging", depth)
    remove_nested(table, depth)


def test_deep_nesting_scans_without_recursion(deep):
    root, _, depth, fits = deep
    if not fits:
        with pytest.raises(Qa2Error) as err:
            scan(root)
        assert len(err.value.lines) == 2  # one line per chain, naming where the OS stopped
        assert all("File name too long" in line for line in err.value.lines)
        return
    items, _ = scan(root)
    bottom = next(i for i in items if i.name == "bottom.txt")
    assert bottom.relpath.count("/") == depth + 1
    assert next(i for i in items if i.name == "deep.image").type.name == "TABLE"


def test_deep_nesting_in_a_table_walks_without_recursion(deep):
    root, table, depth, fits = deep
    problems: list[str] = []
    tree = fileops.walk_tree(str(table), str(root), problems, [])
    if not fits:
        assert len(problems) == 1 and "File name too long" in problems[0]
        return
    assert problems == [] and sum(e.is_dir for e in tree) == depth
    assert [e.rel for e in tree][:2] == ["d", "d/d"]  # a directory before what it holds


def test_deep_nesting_dry_run_exits_cleanly(run_qa2, deep, tmp_path):
    root, _, _, fits = deep
    r = run_qa2("package", root, tmp_path / "2015.1.00123.S", "--dry-run")
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr + r.stdout
    if fits:
        assert r.exit_code == 0, r.stderr
    else:  # a clear refusal, naming the paths the OS would not take
        assert r.exit_code == 1 and r.stderr.count("File name too long") == 2


def test_a_deep_package_is_walked_without_recursion(deep):
    root, _, depth, fits = deep
    found = [p for p, _ in fileops.iter_package_files(str(root / "Imaging"))]
    bottoms = [p for p in found if p.startswith(f"{root}/Imaging/d/") and p.endswith("/bottom.txt")]
    assert len(bottoms) == (1 if fits else 0)  # past PATH_MAX: passed over, as os.walk does
    if fits:
        assert Path(bottoms[0]).relative_to(root / "Imaging").parts.count("d") == depth


def test_iter_package_files_keeps_the_os_walk_order(tmp_path):
    top = write_tree(tmp_path / "pack", {"b.txt": "", "a/z.txt": "", "a/y/x.txt": "", "a.txt": "",
                                         "c/d.txt": ""})
    (top / "a" / "link").symlink_to("y")
    (top / "dangling").symlink_to("nowhere")
    os.mkfifo(top / "c" / "fifo")

    def old(top):
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames + [d for d in dirnames
                                            if os.path.islink(os.path.join(dirpath, d))]):
                path = os.path.join(dirpath, name)
                yield path, os.lstat(path)

    assert [p for p, _ in fileops.iter_package_files(str(top))] == [p for p, _ in old(str(top))]


# ---------------------------------------------------------------------------- one rule for broken links


@pytest.fixture
def dst(tmp_path):
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "2015.1.00123.S"


def test_a_broken_link_is_left_out_with_a_warning_inside_a_table_and_out(
        toy_pm, tmp_path, dst, piscript):
    src = write_tree(tmp_path / "red", {"toy.marker": "", "scripts/run.py": "x",
                                        **{f"x.pb/{k}": v for k, v in TABLE.items()}})
    outside, inside = src / "scripts/gone.py", src / "x.pb/table.f1"
    outside.symlink_to("deleted.py")
    inside.symlink_to(src / "x.pb/deleted")
    report = engine.package(src, dst, piscript=piscript, plugins=toy_pm, mode="copy")
    broken = [w for w in report.warnings if "broken symbolic link" in w]
    assert broken == [f"{outside}: broken symbolic link (to deleted.py), left out: it holds no data",
                      f"{inside}: broken symbolic link (to {src}/x.pb/deleted), left out: it holds "
                      "no data"]
    assert not (dst / MEMBER / "script/gone.py").exists()
    with tarfile.open(dst / MEMBER / "product/x.pb.tgz") as tar:
        assert "x.pb/table.f1" not in tar.getnames() and "x.pb/table.f0" in tar.getnames()


def test_a_broken_link_pointing_out_of_origpath_is_still_only_broken(tmp_path):
    root = write_tree(tmp_path / "red", {"notes.txt": "x", "x.ms/table.dat": "T"})
    (root / "old").symlink_to("/nonexistent/scratch/old")
    (root / "x.ms/table.f2").symlink_to("/nonexistent/scratch/f2")
    items, warnings = scan(root)
    assert [i.relpath for i in items] == ["notes.txt", "x.ms"]
    assert [w.split(":")[0] for w in warnings] == [f"{root}/old", f"{root}/x.ms/table.f2"]


def test_the_copy_walk_leaves_a_broken_link_out_silently(tmp_path):
    """walk_tree without a warnings list (the copy, the tgz): the scan has named it already."""
    table = write_tree(tmp_path / "red" / "x.ms", {"table.dat": "T"})
    (table / "table.f1").symlink_to("missing")
    tree = fileops.walk_tree(str(table), str(tmp_path / "red"))  # raises on any problem
    assert [e.rel for e in tree] == ["table.dat"]


# ---------------------------------------------------------------------------- loops and revisits


@pytest.mark.parametrize("where", ["Imaging/up", "Imaging/deeper/up"])
def test_a_loop_is_still_refused(run_qa2, tmp_path, where):
    root = write_tree(tmp_path / "reduction", {**MANUAL, "Imaging/deeper/f.txt": "x"})
    (root / where).symlink_to(root / "Imaging")
    r = run_qa2("package", root, tmp_path / "2015.1.00123.S", "--dry-run")
    assert r.exit_code == 1
    assert f"{root / where}: symbolic link loop" in r.stderr


def test_a_loop_inside_a_table_is_refused(tmp_path):
    table = write_tree(tmp_path / "red" / "x.ms", {"table.dat": "T", "ANTENNA/table.dat": "A"})
    (table / "ANTENNA" / "back").symlink_to("..")
    with pytest.raises(Qa2Error, match=r"ANTENNA/back: symbolic link loop"):
        fileops.walk_tree(str(table), str(tmp_path / "red"))
    with pytest.raises(Qa2Error, match="1 problem"):
        scan(tmp_path / "red")


def test_a_link_to_a_directory_shows_its_content_from_one_listing(tmp_path, listings):
    """The pipeline restore links ``products -> ../calibration``: both paths are items, the
    real one listed first whatever the names' order, and the directory listed once."""
    root = write_tree(tmp_path / "red", {"calibration/flux.csv": "f", "calibration/c.tbl/table.dat": "T",
                                         "raw/uid.asdm.sdm/ASDM.xml": "<ASDM/>"})
    (root / "calibrated").mkdir()
    (root / "calibrated" / "products").symlink_to("../calibration")
    (root / "calibrated" / "uid").symlink_to("../raw/uid.asdm.sdm")
    items, warnings = scan(root)
    assert warnings == ()
    assert [(i.relpath, i.type.name) for i in items] == [
        ("calibrated/products/c.tbl", "TABLE"), ("calibrated/products/flux.csv", "FILE"),
        ("calibrated/uid", "ASDM"), ("calibration/c.tbl", "TABLE"), ("calibration/flux.csv", "FILE"),
        ("raw/uid.asdm.sdm", "ASDM")]
    assert max(listings.values()) == 1


def test_a_multi_ms_subtable_link_ships_as_files(tmp_path):
    """A Multi-MS links each sub-MS's subtables to the first one's: the copy holds them all."""
    mms = write_tree(tmp_path / "red" / "x.mms", {
        "table.dat": "T", "SUBMSS/x.0000.ms/table.dat": "T", "SUBMSS/x.0000.ms/ANTENNA/table.dat": "A",
        "SUBMSS/x.0001.ms/table.dat": "T"})
    (mms / "SUBMSS/x.0001.ms/ANTENNA").symlink_to("../x.0000.ms/ANTENNA")
    warnings: list[str] = []
    tree = fileops.walk_tree(str(mms), str(tmp_path / "red"), [], warnings)
    rels = [e.rel for e in tree]
    assert "SUBMSS/x.0001.ms/ANTENNA/table.dat" in rels and "SUBMSS/x.0000.ms/ANTENNA/table.dat" in rels
    assert rels.index("SUBMSS/x.0001.ms/ANTENNA") < rels.index("SUBMSS/x.0001.ms/ANTENNA/table.dat")
    assert warnings == []


def test_fileops_still_exports_the_walk():
    for name in ("walk_tree", "lstat_checked", "_inside", "TreeEntry", "tree_fingerprint",
                 "iter_package_files", "special_kind", "VOLATILE"):
        assert getattr(fileops, name) is getattr(walk, name)


_NAME = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
                min_size=1, max_size=4) | st.sampled_from(["a", "a.txt", "a-b", "a b", "é", "A"])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.lists(_NAME, min_size=1, max_size=4).map("/".join), max_size=30))
def test_path_order_sorts_by_component(rels):
    # a directory before what it holds, a/x before a.txt: the order of the component lists
    assert sorted(rels, key=walk.path_order) == sorted(rels, key=lambda r: r.split("/"))
