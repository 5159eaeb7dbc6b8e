"""Carry a plan out in one mode, below a member directory in the scratch space.

The swap into place, the lock and recovery are qa2core.writing.build's. Work is batched: small files go
to the thread pool in groups, in plan order (one future per file costs more than copying a small
plot), their reads hinted ahead (fileops.ahead); big files one by one, biggest first so the
pool's tail is short. Each source is read once: the read that copies it also hashes it and
checks it against the scan.
"""

from __future__ import annotations

import itertools
import os
import stat
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from qa2core.hooks.model import MEMBER_DIRS, Action, ItemType, Mode
from qa2core.planning.plan import PlannedFile
from qa2core.writing import export, fileops, journal
from qa2core.writing.fileops import Copied, changed

BATCH_FILES = 256
BATCH_BYTES = 32 << 20
FAKE_BATCH = 2048  # a placeholder costs one create, no read


@dataclass(frozen=True, slots=True)
class Written:
    """One file on disk in the package (path relative to PACKPATH)."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class EntryResult:
    dest: str  # member-relative
    action: str  # what was done: fake, empty, copy, reflink, link, gzip, tgz, reused
    written: tuple[Written, ...]
    journal: tuple[tuple[str, journal.Entry], ...] = ()
    link_fallback: bool = False  # a link was refused by the file system: copied instead
    copied_table: bool = False  # hard mode copied a CASA table on purpose


_REHEARSED = EntryResult("", "fake", ())


def fingerprint(entry: PlannedFile, sources: tuple[str, ...] | None = None,
                ) -> tuple[tuple[str, int, int], ...]:
    """``sources``: ``entry.sources`` when the caller has them (they are made on each ask)."""
    sources = entry.sources if sources is None else sources
    # a rewritten file also depends on the names it rewrites
    made = tuple((f"rewrite {old} -> {new}", 0, 0) for old, new in entry.renames)
    if entry.items:
        return tuple((src, item.size, item.mtime_ns)
                     for src, item in zip(sources, entry.items, strict=True)) + made
    return tuple((src, (st := os.stat(src)).st_size, st.st_mtime_ns) for src in sources) + made


def _small(e: PlannedFile) -> bool:
    return e.bytes < BATCH_BYTES and e.action is Action.COPY and not e.whole_dir


def _batches(entries: tuple[PlannedFile, ...], jobs: int,
             ) -> tuple[list[list[PlannedFile]], list[list[PlannedFile]]]:
    """Big files, compression and whole directories alone, biggest first; and small files in
    plan order (directory order, usually the disk's), BATCH_FILES or BATCH_BYTES at a time."""
    big = [[e] for e in sorted((e for e in entries if not _small(e)), key=lambda e: -e.bytes)]
    small: list[list[PlannedFile]] = [[]]
    size = 0
    for e in filter(_small, entries):
        if len(small[-1]) >= BATCH_FILES or size >= BATCH_BYTES:
            small.append([])
            size = 0
        small[-1].append(e)
        size += e.bytes
    return big, _deal([b for b in small if b], jobs)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _deal(batches: list, jobs: int) -> list:
    """``batches`` reordered so that ``jobs`` threads taking them in turn each work through a
    stretch of the plan of their own: a create locks its directory, so two threads in one
    directory wait for each other."""
    n = max(1, -(-len(batches) // max(1, jobs)))
    stretches = [batches[i:i + n] for i in range(0, len(batches), n)]
    return [b for row in itertools.zip_longest(*stretches) for b in row if b is not None]


class Executor:
    """Materialises planned files below ``member_dir``; ``member_rel`` is its path relative to
    PACKPATH (for manifest and journal), ``root`` the real path of ORIGPATH (links inside
    tables may not leave it)."""

    def __init__(self, member_dir: str, member_rel: str, mode: Mode, pack: str, root: str,
                 old: dict[str, journal.Entry]) -> None:
        self.member_dir = member_dir
        self.member_rel = member_rel
        self.mode = mode
        self.pack = pack
        self.root = root
        self.old = old
        self.tick: Callable[[int], None] | None = None

    def run(self, entries: tuple[PlannedFile, ...], jobs: int,
            advance: Callable[[int], None] | None = None) -> list[EntryResult]:
        """Every entry, in plan order. ``advance`` (thread-safe) is told source bytes done."""
        self.tick = advance
        for parent in sorted({*MEMBER_DIRS, *(e.dest.rpartition("/")[0] for e in entries)}):
            os.makedirs(os.path.join(self.member_dir, parent), exist_ok=True)
        # Big files wait on the disk as much as they hash: ``jobs`` threads. Small ones are
        # Python work per file and creates in one directory: more threads than CPUs only queue
        # for the GIL and the directory (20,000 small files: 3.1 s with 2 threads, 3.8 s with 4).
        few = max(1, min(jobs, _cpus()))
        if not self.mode.real:  # names only: no reads; creating inodes is the kernel's time
            batches = _deal([entries[i:i + FAKE_BATCH] for i in range(0, len(entries), FAKE_BATCH)], few)
            return self._pool(self._placeholders, batches, few)  # in plan order, all alike
        big, small = _batches(entries, few)
        results = self._pool(self._batch, big, max(1, jobs)) + self._pool(self._batch, small, few)
        by_dest = {r.dest: r for r in results}
        return [by_dest[e.dest] for e in entries]

    @staticmethod
    def _pool(work: Callable[[list[PlannedFile]], list[EntryResult]],
              batches: list[list[PlannedFile]], workers: int) -> list[EntryResult]:
        results: list[EntryResult] = []
        if not batches:
            return results
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(work, b) for b in batches]
            try:
                for future in futures:
                    results += future.result()
            except BaseException:
                # A full disk or a changed source: stop queued work at once, not after it.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return results

    def _batch(self, batch: list[PlannedFile]) -> list[EntryResult]:
        out = []
        for entry in fileops.ahead(batch, self._to_read):
            done = [0]

            def tick(n: int, done: list[int] = done) -> None:
                done[0] += n
                self.tick(n)

            try:
                out.append(self._one(entry, tick if self.tick else None))
            except OSError as exc:  # a full disk says where: write() errors carry no name
                if not exc.filename:
                    exc.filename = os.path.join(self.member_dir, entry.dest)
                raise
            if self.tick and entry.bytes > done[0]:
                self.tick(entry.bytes - done[0])
        return out

    def _to_read(self, entry: PlannedFile) -> str | None:
        """The file a batch entry will read: None when it is reused (no read) or not a file."""
        if entry.whole_dir or self._rel(entry.dest) in self.old:
            return None
        sources = entry.sources
        return sources[0] if sources else None

    def _placeholders(self, batch: tuple[PlannedFile, ...]) -> list[EntryResult]:
        """A rehearsal's files: created, recorded by one shared result (nothing to hash). Each
        directory is opened once per run of entries in it; on Linux mknod makes each file as
        open(O_CREAT | O_EXCL) would, without opening it."""
        for parent, group in itertools.groupby(batch, key=lambda e: e.dest.rpartition("/")[0]):
            fd = os.open(os.path.join(self.member_dir, parent), os.O_RDONLY | os.O_DIRECTORY)
            try:
                for e in group:
                    name = e.dest.rpartition("/")[2]
                    try:
                        if e.whole_dir:
                            os.mkdir(name, dir_fd=fd)
                        elif sys.platform == "linux":
                            os.mknod(name, stat.S_IFREG | 0o644, dir_fd=fd)
                        else:
                            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd))
                    except OSError as exc:
                        exc.filename = os.path.join(self.member_dir, e.dest)
                        raise
            finally:
                os.close(fd)
        return [_REHEARSED] * len(batch)

    def _rel(self, dest: str) -> str:
        return f"{self.member_rel}/{dest}"

    def _placeholder(self, entry: PlannedFile) -> EntryResult:
        dst = os.path.join(self.member_dir, entry.dest)
        if entry.whole_dir:
            os.mkdir(dst)
            return EntryResult(entry.dest, "fake", ())
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        action = "empty" if entry.action is Action.EMPTY else "fake"
        return EntryResult(entry.dest, action, (Written(self._rel(entry.dest), fileops.EMPTY_SHA256, 0),))

    def _one(self, entry: PlannedFile, tick: fileops.Tick | None) -> EntryResult:
        dst = os.path.join(self.member_dir, entry.dest)
        if entry.action is Action.EMPTY:
            return self._placeholder(entry)
        if entry.whole_dir:
            return self._copy_tree(entry, dst)
        reused = self._reuse(entry, dst)
        if reused is not None:
            return reused
        if entry.action is Action.EXPORT:  # a CASA image written as FITS (qa2core.writing.export)
            return export.written(self, entry, dst)
        tick = tick if entry.bytes >= BATCH_BYTES else None  # small files: one tick each
        link_fallback = False
        sources = entry.sources  # made from the items on each ask: once here
        if entry.action is Action.GZIP:
            done = fileops.gzip_file(sources[0], dst, tick=tick)
        elif entry.action is Action.REWRITE:
            done = fileops.rewrite_file(sources[0], dst, entry.renames)
        elif entry.action is Action.TGZ:
            trees = [(src, None if not item.is_dir else fileops.walk_tree(src, self.root))
                     for src, item in zip(sources, entry.items, strict=True)]
            done, _, _ = fileops.tgz(trees, dst)
            for src, item in zip(sources, entry.items, strict=True):
                self._check_item(src, item, trees)
        else:
            done, link_fallback = self._copy_or_link(sources[0], dst,
                                                     self.mode is Mode.HARD and entry.linkable, tick)
        if entry.items and entry.action is not Action.TGZ:
            # as opened, and after the copy: a reducer still writing into ORIGPATH stops the run
            item, after = entry.items[0], os.stat(sources[0])
            if {(done.src_size, done.src_mtime_ns), (after.st_size, after.st_mtime_ns)} != {
                    (item.size, item.mtime_ns)}:
                raise changed(sources[0])
        st = os.lstat(dst)
        rel = self._rel(entry.dest)
        record = journal.Entry(fingerprint(entry, sources), str(self.mode), done.how, done.sha256,
                               st.st_size, st.st_mtime_ns)
        return EntryResult(entry.dest, done.how, (Written(rel, done.sha256, st.st_size),),
                           ((rel, record),), link_fallback)

    def _check_item(self, src: str, item, trees) -> None:
        tree = dict(trees).get(src)
        if tree is not None and fileops.tree_fingerprint(tree) != (item.size, item.mtime_ns):
            raise changed(src)

    def _copy_or_link(self, src: str, dst: str, link: bool,
                      tick: fileops.Tick | None = None) -> tuple[Copied, bool]:
        if link:
            try:
                return fileops.link_file(src, dst), False
            except OSError as exc:
                if exc.errno not in fileops.LINK_FALLBACK_ERRNOS:
                    raise
                return fileops.copy_file(src, dst, tick), True
        return fileops.copy_file(src, dst, tick), False

    def _reuse(self, entry: PlannedFile, dst: str) -> EntryResult | None:
        """The previous run's file, when nothing about it changed: no read, no hash. Linked
        into the new build, or copied where the file system refuses links."""
        rel = self._rel(entry.dest)
        old = self.old.get(rel)
        previous = os.path.join(self.pack, rel)
        if (old is None or old.mode != str(self.mode) or old.sources != fingerprint(entry)
                or not journal.still_valid(old, previous)):
            return None
        # Its bytes, not its size and mtime, decide: a same-size change with the mtime put back
        # (bit rot, an edit) is written again from the source, so a re-run repairs it.
        try:
            if fileops.hash_file(previous, follow=False) != old.sha256:
                return None
        except (OSError, fileops.Qa2Error):
            return None
        fallback = False
        try:
            os.link(previous, dst)
        except OSError as exc:
            if exc.errno not in fileops.LINK_FALLBACK_ERRNOS:
                raise
            fileops.copy_file(previous, dst)
            os.utime(dst, ns=(old.mtime_ns, old.mtime_ns))
            fallback = True
        return EntryResult(entry.dest, "reused", (Written(rel, old.sha256, old.size),),
                           ((rel, old),), fallback)

    def _copy_tree(self, entry: PlannedFile, dst: str) -> EntryResult:
        """A directory shipped whole: one walk lists it, checks it against the scan, and copies
        it (empty subdirectories included). Hard mode links only ASDM content: casacore
        rewrites tables in place."""
        src, item = entry.sources[0], entry.items[0]
        tree = fileops.walk_tree(src, self.root)
        if fileops.tree_fingerprint(tree) != (item.size, item.mtime_ns):
            raise changed(src)
        link = self.mode is Mode.HARD and item.type is ItemType.ASDM
        os.mkdir(dst)
        written, records, fallback = [], [], False
        for e in fileops.ahead(tree, lambda e: None if e.is_dir else os.path.join(src, e.rel)):
            target = os.path.join(dst, e.rel)
            if e.is_dir:
                os.mkdir(target)
                continue
            done, refused = self._copy_or_link(os.path.join(src, e.rel), target, link)
            fallback = fallback or refused
            if (done.src_size, done.src_mtime_ns) != (e.size, e.mtime_ns):
                raise changed(os.path.join(src, e.rel))
            rel = self._rel(f"{entry.dest}/{e.rel}")
            written.append(Written(rel, done.sha256, done.size))
        action = "link" if link else "copy"
        return EntryResult(entry.dest, action, tuple(written), tuple(records), fallback,
                           copied_table=self.mode is Mode.HARD and not link)
