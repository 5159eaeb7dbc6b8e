"""Walking the input: the scan's directories (:mod:`qa2core.planning.scan`), the contents of a table or
ASDM (:func:`walk_tree`), and a package (:func:`iter_package_files`). Read-only.

Every walk is iterative (an explicit stack), so nesting depth is limited only by the file
system, and every directory is listed once, by (device, inode). The rules for symbolic links
are those of docs/contract.md, "Symbolic links in ORIGPATH":

* a link resolving inside ORIGPATH counts as what it points to; one leaving ORIGPATH, a link
  loop, a FIFO, socket or device is refused by name;
* a broken link holds no data: it is left out, named in one warning, wherever it is;
* a directory is listed at its first path: paths without links first, then in path order.
  Every further path to it (a link) stands for what that listing found, its files, its
  subdirectories and its tables, read from memory, not from the disk again. The links to
  directories inside it are followed at their own place only: a further path shows them left
  out, named in one warning. A link to a directory the path already passes through (a loop) is
  refused.

So links that fan out (each level holding two links to the level below) cost one listing per
directory and one copy of a subtree per link, never a copy per path (2**levels).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from qa2core.errors import Qa2Error

# casacore's lock files describe the reducer's open sessions; a shipped stale lock only
# produces lock errors for the PI, so they stay out of the package.
VOLATILE = frozenset({"table.lock"})

Key = tuple[int, int]  # (st_dev, st_ino) of a directory
Chain = tuple[Key, "Chain"] | None  # the directories a path passes through, innermost first


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry below a directory item (a CASA table, an ASDM), as a copy or tar sees it."""

    rel: str  # relative to the item, POSIX
    is_dir: bool
    size: int
    mtime_ns: int
    mode: int


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a special file"


def lstat_checked(path: str, root: str, problems: list[str],
                  warnings: list[str] | None = None) -> os.stat_result | None:
    """The stat of what ``path`` stands for, or ``None`` when it is left out.

    A symbolic link counts as its target when that resolves inside ``root``; a link leaving
    it, a link loop and a special file (never opened) are problems. A broken link, wherever it
    points, holds no data: it is left out with one warning (to ``warnings`` when given).
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                if warnings is not None:
                    warnings.append(f"{path}: broken symbolic link (to {_readlink(path)}), left "
                                    "out: it holds no data")
                return None
            target = os.path.realpath(path)
            if not _inside(target, root):
                problems.append(f"{path}: symbolic link leaving ORIGPATH (to {target}): refused; "
                                "copy the file into the reduction or remove the link")
                return None
    except FileNotFoundError:  # gone since it was listed: nothing to ship
        if warnings is not None:
            warnings.append(f"{path}: removed while the input was read, left out")
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            problems.append(f"{path}: symbolic link loop: refused; fix or remove the link")
        else:
            problems.append(f"{path}: cannot read ({exc.strerror})")
        return None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        problems.append(f"{path}: {special_kind(st.st_mode)}, not a file or directory: refused, "
                        "never opened")
        return None
    return st


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def tree_fingerprint(entries: list[TreeEntry]) -> tuple[int, int]:
    """(bytes, newest mtime_ns) of a tree's files: the scan's and the copy's change check."""
    files = [e for e in entries if not e.is_dir]
    return sum(e.size for e in files), max((e.mtime_ns for e in files), default=0)


def list_dir(path: str, problems: list[str]) -> list[os.DirEntry] | None:
    """The entries of directory ``path`` sorted by name; None with a problem noted when it
    cannot be listed. The one place a walk lists a directory."""
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        problems.append(f"{path}: cannot list directory ({exc.strerror})")
        return None


def path_order(rel: str) -> str:
    """Sort key of a relative path: by component, so a directory comes before what it holds and
    ``a/x`` before ``a.txt`` (the order of a depth-first walk by name). The separator becomes
    NUL, which no name holds and every character sorts after: the order of the component lists,
    with one string per path (a list of components costs 300 bytes a path: 60 MB on 200,000)."""
    return rel.replace("/", "\0")


# ---------------------------------------------------------------------------- the walker


@dataclass(frozen=True, slots=True)
class File:
    name: str
    st: os.stat_result


@dataclass(frozen=True, slots=True)
class Dir:
    """A subdirectory; ``link``: reached through a symbolic link (followed a round later)."""

    name: str
    st: os.stat_result
    link: bool = False


@dataclass(frozen=True, slots=True)
class Leaf:
    """A directory that is one item (a table, for the scan): not walked, ``payload`` kept."""

    payload: object


Node = File | Dir
Listing = Leaf | list[Node] | None  # what one directory's listing gave; None: unlistable
Reader = Callable[[str, str, list[os.DirEntry], bool], Leaf | list[Node]]


def _key(st: os.stat_result) -> Key:
    return st.st_dev, st.st_ino


def _on_chain(chain: Chain, key: Key) -> bool:
    while chain is not None:
        if chain[0] == key:
            return True
        chain = chain[1]
    return False


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


@dataclass(slots=True)
class _Frame:
    path: str
    rel: str  # "" for the top
    st: os.stat_result
    chain: Chain  # the directories above this one on this path
    again: bool = False  # already listed at another path: shown from memory


def _remembered(listing: Listing) -> list[Node | str] | Leaf | None:
    """What showing a directory again needs: its subdirectories, its files by name. A file's
    stat is taken again then: kept, each stat_result costs ~0.5 kB, 100 MB over 200,000 files,
    for a second path that most reductions never have."""
    if not isinstance(listing, list):
        return listing
    return [node.name if isinstance(node, File) else node for node in listing]


class Walker:
    """One walk from a top directory. ``read(path, name, entries, top)`` turns a listing into
    nodes (or a Leaf: one item, not walked); ``on_file(rel, path, st)``, ``on_dir(rel, st)`` and
    ``on_leaf(rel, payload)`` receive what the walk finds, each path once, in no set order."""

    def __init__(self, read: Reader, problems: list[str], warnings: list[str] | None, *,
                 on_file: Callable[[str, str, os.stat_result], None],
                 on_dir: Callable[[str, os.stat_result], None] = lambda rel, st: None,
                 on_leaf: Callable[[str, object], None] = lambda rel, payload: None) -> None:
        self.read, self.problems, self.warnings = read, problems, warnings
        self.on_file, self.on_dir, self.on_leaf = on_file, on_dir, on_leaf
        self.first: dict[Key, str] = {}  # directory -> the path it was listed at
        self.memo: dict[Key, list[Node | str] | Leaf | None] = {}
        self.told: set[str] = set()  # links to directories already named in a warning

    def run(self, top: str, entries: list[os.DirEntry] | None = None) -> None:
        """Walk ``top`` (``entries``: its listing, when the caller has it already)."""
        pending = [_Frame(top, "", os.stat(top), None)]
        given = entries
        while pending:  # round 0: paths without links; round n: through n links
            later: list[_Frame] = []
            for start in sorted(pending, key=lambda f: path_order(f.rel)):
                stack = [start]
                while stack:
                    frame = stack.pop()
                    self._step(frame, stack, later, given)
                    given = None
            pending = later

    def _restat(self, path: str, name: str) -> File | None:
        """A remembered file seen again (through a link: followed, as when it was listed)."""
        try:
            return File(name, os.stat(path))
        except OSError:
            if self.warnings is not None:
                self.warnings.append(f"{path}: removed while the input was read, left out")
            return None

    def _step(self, frame: _Frame, stack: list[_Frame], later: list[_Frame],
              given: list[os.DirEntry] | None) -> None:
        key = _key(frame.st)
        if key in self.first and not frame.again:
            if _on_chain(frame.chain, key):
                self.problems.append(f"{frame.path}: symbolic link loop (points back to a parent "
                                     "directory): refused; fix or remove the link")
                return
            frame.again = True  # another path to a directory listed already
        if frame.again:
            listing = self.memo.get(key)
        else:
            self.first[key] = frame.path
            entries = given if given is not None else list_dir(frame.path, self.problems)
            listing = None if entries is None else self.read(
                frame.path, os.path.basename(frame.path), entries, frame.rel == "")
            self.memo[key] = _remembered(listing)
        if isinstance(listing, Leaf):
            self.on_leaf(frame.rel, listing.payload)
            return
        if frame.rel:
            self.on_dir(frame.rel, frame.st)
        if listing is None:
            return
        chain = (key, frame.chain)
        for node in reversed(listing):
            if isinstance(node, str):  # a file of a directory shown again (_remembered)
                node = self._restat(f"{frame.path}/{node}", node)
                if node is None:
                    continue
            path, rel = f"{frame.path}/{node.name}", _join(frame.rel, node.name)
            if isinstance(node, File):
                self.on_file(rel, path, node.st)
            elif not node.link:
                child = _Frame(path, rel, node.st, chain, frame.again)
                if frame.again and _on_chain(chain, _key(node.st)):
                    continue  # a loop, refused where it was first listed
                stack.append(child)
            elif not frame.again:
                later.append(_Frame(path, rel, node.st, chain))
            else:
                own = f"{self.first[key]}/{node.name}"
                if own not in self.told and self.warnings is not None:
                    self.told.add(own)
                    self.warnings.append(
                        f"{path}: link to a directory inside a directory reached again through a "
                        f"link: left out here, followed at its own place {own}")


# ---------------------------------------------------------------------------- table contents


def walk_tree(top: str, root: str, problems: list[str] | None = None,
              warnings: list[str] | None = None, *,
              entries: list[os.DirEntry] | None = None) -> list[TreeEntry]:
    """Every directory and regular file below ``top``, sorted by path, without ``table.lock``.

    Links follow the walk's rules (module docstring): links inside ``root`` (ORIGPATH) count as
    their targets; a link leaving it, a loop and any FIFO, socket or device are problems,
    appended to ``problems`` when given (the scan lists them all), raised otherwise; broken
    links are left out (named in ``warnings`` when given). ``entries``: ``top``'s listing, when
    the caller has it already.
    """
    out: list[TreeEntry] = []
    found: list[str] = [] if problems is None else problems

    def read(path: str, _name: str, listing: list[os.DirEntry], _top: bool) -> list[Node]:
        nodes: list[Node] = []
        for entry in listing:
            if entry.name in VOLATILE:
                continue
            st = lstat_checked(entry.path, root, found, warnings)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                nodes.append(Dir(entry.name, st, entry.is_symlink()))
            else:
                nodes.append(File(entry.name, st))
        return nodes

    Walker(read, found, warnings,
           on_file=lambda rel, _p, st: out.append(
               TreeEntry(rel, False, st.st_size, st.st_mtime_ns, st.st_mode)),
           on_dir=lambda rel, st: out.append(TreeEntry(rel, True, 0, st.st_mtime_ns, st.st_mode)),
           ).run(top, entries)
    if problems is None and found:
        raise Qa2Error(found[0], lines=tuple(found))
    out.sort(key=lambda e: path_order(e.rel))
    return out


# ---------------------------------------------------------------------------- a package


def iter_package_files(top: str, empty_dirs: bool = False,
                       ) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of every non-directory below ``top`` without following any link (verify,
    tar): a symlink or special file is yielded as what it is, for the caller to refuse. In
    ``os.walk`` order (a directory's entries by name, then its subdirectories by name); a
    directory that cannot be listed is passed over, as ``os.walk`` does. ``empty_dirs``: each
    empty directory below ``top`` is yielded too (a rehearsal's table, qa2core.checks.content)."""
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        if empty_dirs and not entries and directory != top:
            yield directory, os.lstat(directory)
        subdirs = []
        for entry in entries:
            try:
                real_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                real_dir = False
            if real_dir:
                subdirs.append(entry.path)
            else:
                yield entry.path, os.lstat(entry.path)
        stack.extend(reversed(subdirs))
