"""Carry a plan out: fake, ticket, copy or hard, one planned file at a time.

The executor writes below a member directory inside ``PACKPATH/.qa2-partial/``; the swap into
place, the lock and the recovery of killed runs are qa2core.build's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from qa2core import fileops, journal
from qa2core.errors import Qa2Error
from qa2core.model import MEMBER_DIRS, Action, ItemType
from qa2core.plan import PlannedFile
from qa2core.scan import tree_stat


@dataclass(frozen=True)
class Written:
    """One file on disk in the package (relative to PACKPATH)."""

    path: str
    sha256: str | None
    size: int


@dataclass
class EntryResult:
    entry: PlannedFile
    action: str  # what was done: fake, copy, reflink, link, gzip, tgz, empty, reused
    written: list[Written] = field(default_factory=list)
    link_fallback: bool = False  # hard mode wanted a link and the file system refused
    copied_tables: bool = False  # hard mode copied a CASA table on purpose


class SourceChanged(Qa2Error):
    """A source file changed between the scan and the copy: the package would be inconsistent."""


def fingerprint(entry: PlannedFile) -> tuple[tuple[str, int, int], ...]:
    if entry.items:
        return tuple((str(src), item.size, item.mtime_ns)
                     for src, item in zip(entry.sources, entry.items, strict=True))
    return tuple((str(src), src.stat().st_size, src.stat().st_mtime_ns) for src in entry.sources)


def check_unchanged(entry: PlannedFile) -> None:
    """Compare every source with the scan; a reducer still writing into ORIGPATH stops the run."""
    for src, item in zip(entry.sources, entry.items, strict=False):
        if item.is_dir:
            size, mtime = tree_stat(src)
        else:
            st = os.stat(src)
            size, mtime = st.st_size, st.st_mtime_ns
        if (size, mtime) != (item.size, item.mtime_ns):
            raise SourceChanged(f"{src}: source changed while packaging (size or modification "
                                "time differs from the scan); run again once it is final")


class Executor:
    """Materialises planned files below ``member_dir`` (inside the partial directory)."""

    def __init__(self, member_dir: Path, rel_prefix: str, mode: str, packpath: Path,
                 old: dict[str, journal.Entry] | None = None) -> None:
        self.member_dir = member_dir
        self.rel_prefix = rel_prefix  # member path relative to PACKPATH, for manifest lines
        self.mode = mode
        self.packpath = packpath
        self.old = old or {}
        self.new: dict[str, journal.Entry] = {}
        self._cut = len(str(member_dir)) + 1
        self._made: set[Path] = set()
        self.advance: Callable[[int], None] | None = None

    def _ensure_dir(self, path: Path) -> None:
        # mkdir(exist_ok=True) raises and catches internally: with 20,000 files that shows.
        if path not in self._made:
            path.mkdir(parents=True, exist_ok=True)
            self._made.add(path)

    def _rel(self, dst: Path) -> str:
        # dst is always member_dir / something: slicing the string spares pathlib's parsing
        return f"{self.rel_prefix}/{str(dst)[self._cut:]}"

    def run(self, entries: tuple[PlannedFile, ...], jobs: int,
            advance: Callable[[int], None] | None = None) -> list[EntryResult]:
        """Materialise every entry on ``jobs`` threads. ``advance`` (thread-safe) is told the
        source bytes done: per chunk while copying or compressing, per entry otherwise."""
        self.advance = advance
        for sub in MEMBER_DIRS:
            (self.member_dir / sub).mkdir(parents=True, exist_ok=True)
        # Big entries first so the pool's tail is short.
        order = sorted(entries, key=lambda e: -e.bytes)
        results: dict[str, EntryResult] = {}
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(self.one, entry): entry for entry in order}
            try:
                for future in as_completed(futures):
                    results[futures[future].dest] = future.result()
            except BaseException:
                # A full disk or a changed source: stop queued work at once, not after it.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return [results[e.dest] for e in entries]

    def one(self, entry: PlannedFile) -> EntryResult:
        dst = self.member_dir / entry.dest
        self._ensure_dir(dst.parent)
        real = self.mode in ("copy", "hard")
        if entry.action is Action.EMPTY or not real:
            if entry.whole_dir:
                dst.mkdir()
                return EntryResult(entry, "fake")
            dst.touch(exist_ok=False)
            return EntryResult(entry, "empty" if entry.action is Action.EMPTY else "fake",
                               [Written(self._rel(dst), fileops.EMPTY_SHA256, 0)])
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            self.advance(n)

        meter = tick if self.advance else None
        if entry.whole_dir:
            result = self._copy_tree(entry, dst)
        else:
            result = self._reuse(entry, dst) or self._make(entry, dst, meter)
        check_unchanged(entry)
        if self.advance and entry.bytes > done[0]:
            self.advance(entry.bytes - done[0])
        return result

    def _reuse(self, entry: PlannedFile, dst: Path) -> EntryResult | None:
        """Link the previous run's output when nothing about it changed: no read, no hash."""
        rel = self._rel(dst)
        old = self.old.get(rel)
        previous = self.packpath / rel
        if (old is None or old.mode != self.mode or old.sources != fingerprint(entry)
                or not journal.still_valid(old, previous)):
            return None
        os.link(previous, dst)
        self.new[rel] = old
        return EntryResult(entry, "reused", [Written(rel, old.sha256, old.size)])

    def _make(self, entry: PlannedFile, dst: Path, tick: fileops.Tick | None) -> EntryResult:
        if entry.action is Action.GZIP:
            sha = fileops.gzip_file(entry.sources[0], dst, tick=tick)
            result = EntryResult(entry, "gzip")
        elif entry.action is Action.TGZ:
            sha = fileops.tgz(entry.sources, dst)
            result = EntryResult(entry, "tgz")
        else:
            result = self._copy_or_link(entry, entry.sources[0], dst, EntryResult(entry, "copy"),
                                        tick)
            sha = result.written[-1].sha256
            result.written.clear()
        st = dst.stat()
        rel = self._rel(dst)
        result.written.append(Written(rel, sha, st.st_size))
        self.new[rel] = journal.Entry(fingerprint(entry), self.mode, result.action, sha or "",
                                      st.st_size, st.st_mtime_ns)
        return result

    def _copy_or_link(self, entry: PlannedFile, src: Path, dst: Path, result: EntryResult,
                      tick: fileops.Tick | None = None) -> EntryResult:
        if self.mode == "hard" and entry.linkable:
            try:
                sha = fileops.link_file(src, dst)
                result.action = "link" if result.action in ("copy", "link") else result.action
                result.written.append(Written(self._rel(dst), sha, dst.stat().st_size))
                return result
            except OSError as exc:
                if exc.errno not in fileops.LINK_FALLBACK_ERRNOS:
                    raise
                result.link_fallback = True
        if fileops.reflink(src, dst):
            sha = fileops.hash_file(dst)
            result.action = "reflink" if result.action == "copy" else result.action
        else:
            sha = fileops.copy_file(src, dst, tick=tick)
        result.written.append(Written(self._rel(dst), sha, dst.stat().st_size))
        return result

    def _copy_tree(self, entry: PlannedFile, dst: Path) -> EntryResult:
        item = entry.items[0]
        result = EntryResult(entry, "copy")
        # casacore rewrites table files in place: a link would tie the package to the source.
        if self.mode == "hard" and item.type is not ItemType.ASDM:
            result.copied_tables = True
        elif self.mode == "hard":
            result.action = "link"
        src_top = entry.sources[0]
        dst.mkdir()
        for src in fileops.iter_files(src_top):
            target = dst / src.relative_to(src_top)
            self._ensure_dir(target.parent)
            self._copy_or_link(entry, src, target, result)
        for dirpath, dirnames, _ in os.walk(src_top, followlinks=True):
            for name in dirnames:  # empty subdirectories are part of a table too
                (dst / Path(dirpath, name).relative_to(src_top)).mkdir(exist_ok=True)
        return result
