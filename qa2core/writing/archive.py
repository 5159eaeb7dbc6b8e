"""``qa2 tar``: the archive deliverable, ``<proj>_<MOUS>_NNN_of_MMM.tar`` + ``.sha256`` + ``.md5sum``.

As JAO's pkgPipe did (``tar -cvf <proj>_<MOUS>_001_of_001.tar <proj>``; ``md5sum``), with the
digests computed while the tar is written, the single top directory ``<proj>``, real OUS names
on request, and volumes split at ``max_bytes`` (a file larger than that gets a volume alone).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from qa2core.errors import Qa2Error, UsageError
from qa2core.hooks.model import Level
from qa2core.planning import naming, ous, paths
from qa2core.writing import fileops, manifest, readme
from qa2core.writing.lock import PackLock

DEFAULT_MAX_BYTES = 100 * 2**30  # 100 GiB per volume; documented in docs/reliability.md
PRODUCT_SUFFIXES = (".fits", ".fits.gz")  # what a Cycle >= 5 product volume holds (lower case)
SUM_SUFFIXES = (".sha256", ".md5sum")  # beside each tar, in sha256sum / md5sum format


@dataclass
class TarReport:
    tars: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    md5: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class _TwoHashWriter(fileops.HashingWriter):
    def __init__(self, raw) -> None:
        super().__init__(raw)
        self.md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        return super().write(data)


def _rename_map(members: list[str], uids: ous.OusUids | None) -> dict[str, str]:
    if uids is None:
        return {}
    if len(members) != 1:
        raise Qa2Error(f"--ous-uids names one MOUS, but the package has {len(members)} members; "
                       "tar a one-member package")
    return dict(zip(members[0].split("/"), uids.names(), strict=True))


def _arcname(proj: str, rel: str, renames: dict[str, str]) -> str:
    parts = rel.split("/")
    return "/".join([proj, *(renames.get(p, p) if i < 3 else p for i, p in enumerate(parts))])


def _volumes(files: list[tuple[str, int]], max_bytes: int) -> list[list[str]]:
    volumes: list[list[str]] = [[]]
    size = 0
    for rel, nbytes in files:
        if volumes[-1] and size + nbytes > max_bytes:
            volumes.append([])
            size = 0
        volumes[-1].append(rel)
        size += nbytes
    return volumes


def make_tars(packpath: Path | str, *, ous_uids: str | None = None, out_dir: Path | None = None,
              max_bytes: int = DEFAULT_MAX_BYTES, plugins=None) -> TarReport:
    """Archive a package that proves itself: under the PACKPATH lock (no run can change it
    meanwhile), after a full verify (a fake, or any ERROR, refuses), regular files only."""
    from qa2core.checks.verify import verify
    from qa2core.writing.build import recover

    pack = Path(os.path.abspath(packpath))  # "." has no name, and the tars are named after it
    if not pack.exists():
        raise UsageError(f"{packpath}: PACKPATH does not exist")
    uids = ous.parse_uids(ous_uids) if ous_uids else None
    # A reader: shared with other tars (and readers) of this package, never beside a writer.
    with PackLock(pack, "tar", shared=True) as lock:
        note = None
        if paths.partial_dir(pack).exists():  # a run killed mid-swap: finish or undo it first,
            lock.exclusive("an interrupted run left a swap to finish")  # alone
            note = recover(pack)
            lock.share()
        # Every byte is hashed once, as the tar is written, against the manifest (_write_tar):
        # verify checks the rest (listing, names, content rules) without a hashing pass.
        checked = verify(pack, level="complete", plugins=plugins)
        problems = [f for f in checked.findings
                    if f.level is Level.ERROR or f.rule == "package.fake"]
        if problems:
            lines = tuple(f"{pack}: refused to archive: {f.path}: {f.message} [{f.rule}]"
                          for f in problems[:10])
            raise Qa2Error(lines[0], lines=lines)
        report = TarReport()
        try:
            _archive(pack, checked.members, uids, out_dir or pack.parent, max_bytes, report)
        except BaseException:
            _withdraw(report)  # all or nothing: no volume stays published without the others
            raise
        report.warnings[:0] = [note] if note else []
        return report


def _withdraw(report: TarReport) -> None:
    """Remove what this run published (tars, their sums, the README beside them)."""
    for path in map(Path, report.tars):
        for suffix in ("", *SUM_SUFFIXES):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


def _clear_way(out: Path, tar_names: list[str], report: TarReport) -> None:
    """Remove what a killed tar of these names left and nobody writes now; refuse a name that
    is taken (a tar or a sum is never written over)."""
    for name in tar_names:
        report.warnings += [f"{p}: removed the partial tar of an interrupted run"
                            for p in remove_partials(out, name)]
        for suffix in ("", *SUM_SUFFIXES):
            if (out / (name + suffix)).exists():
                raise Qa2Error(f"{out / (name + suffix)}: exists; remove it or choose --out")


def _archive(pack: Path, members: list[str], uids: ous.OusUids | None, out: Path,
             max_bytes: int, report: TarReport) -> TarReport:
    shapes = {naming.modern(fileops.names_in(pack / m)) for m in members}
    if shapes == {True}:
        return _archive_members(pack, members, uids, out, max_bytes, report)
    if len(shapes) > 1:
        raise Qa2Error(f"{pack}: refused to archive: some members are named after their MOUS "
                       "(Cycle >= 5) and some are not; package them apart [tar.shapes]")
    renames = _rename_map(members, uids)
    mous = uids.member if uids else _member_uid(members)
    if mous is None:
        report.warnings.append("placeholder OUS names in the tar: JAO ingestion refuses them; "
                               "give --ous-uids SOUS,GOUS,MOUS")
    tops = sorted({m.split("/")[0] for m in members})
    cut = len(str(pack)) + 1
    files = [(path[cut:], st.st_size) for top in tops
             for path, st in fileops.iter_package_files(str(pack / top))]
    dirs = sorted({dirpath[cut:] for top in tops for dirpath, _d, _f in os.walk(pack / top)})
    volumes = _volumes(files, max_bytes)
    base = f"{pack.name}_{mous}" if mous else pack.name
    names = [f"{base}_{i:03d}_of_{len(volumes):03d}.tar" for i in range(1, len(volumes) + 1)]
    _clear_way(out, names, report)
    listed = manifest.read(pack)
    readmes = _renamed_readmes(pack, members, renames, listed or {})
    for number, (name, volume) in enumerate(zip(names, volumes, strict=True)):
        extra = (_renamed_manifest(pack.name, listed, renames, readmes)
                 if number == len(names) - 1 else None)
        _write_tar(out / name, pack, volume, dirs if number == 0 else [], renames, extra, report,
                   listed, readmes)
    return report


def _archive_members(pack: Path, members: list[str], uids: ous.OusUids | None, out: Path,
                     max_bytes: int, report: TarReport) -> TarReport:
    """Cycle >= 5 (docs/layout-rules.md): per member, the FITS products in volumes
    ``<proj>_<MOUS>_NNN_of_MMM.tar`` and everything else in ``<proj>_<MOUS>_auxiliary.tar``
    (manifest included), each with its sums, and the member's README beside them. Untarred
    together in one directory they give back the package."""
    if uids is not None:
        raise UsageError(f"{pack}: --ous-uids: this package's file names carry its members' "
                         "names already; tar it without the option")
    listed = manifest.read(pack) or {}
    cut = len(str(pack)) + 1
    plans = []
    for member in members:
        name = member.rsplit("/", 1)[-1]
        if not name.startswith("member.uid___"):
            raise Qa2Error(f"{pack / member}: refused to archive: its files are named after the "
                           "member placeholder; package it again with --ous-uids SOUS,GOUS,MOUS "
                           "(real names in every file name) [tar.placeholder]")
        mous = name.removeprefix("member.")
        files = [(path[cut:], st.st_size) for path, st in fileops.iter_package_files(str(pack / member))]
        fits = [f for f in files if f[0].startswith(f"{member}/product/") and
                f[0].lower().endswith(PRODUCT_SUFFIXES)]
        in_volumes = {rel for rel, _size in fits}
        aux = [rel for rel, _size in files if rel not in in_volumes]
        chain = ["/".join(member.split("/")[:depth]) for depth in (1, 2, 3)]
        tree = sorted({*chain, *(d[cut:] for d, _s, _f in os.walk(pack / member))})
        volumes = _volumes(fits, max_bytes) if fits else []
        names = [f"{pack.name}_{mous}_{i:03d}_of_{len(volumes):03d}.tar"
                 for i in range(1, len(volumes) + 1)]
        plans.append((member, names, volumes, f"{pack.name}_{mous}_auxiliary.tar", aux, tree))
    beside = []
    for member, names, _v, aux_name, _a, _t in plans:
        readme_name = naming.readme_of(fileops.names_in(pack / member))
        beside.append((member, readme_name))
        _clear_way(out, [*names, aux_name], report)
        if readme_name and (out / readme_name).exists():
            raise Qa2Error(f"{out / readme_name}: exists; remove it or choose --out")
    whole = manifest.encode(manifest.format_lines(listed.items())) if listed else None
    for _member, names, volumes, aux_name, aux, tree in plans:
        product_dirs = sorted({"/".join(rel.split("/")[:depth]) for v in volumes for rel in v
                               for depth in range(1, rel.count("/") + 1)})
        for tar_name, volume in zip(names, volumes, strict=True):
            _write_tar(out / tar_name, pack, volume, product_dirs, {}, None, report, listed)
        _write_tar(out / aux_name, pack, aux, tree, {}, whole, report, listed)
    for member, readme_name in beside:  # the README as its own item (docs/domain.md §2.6)
        if readme_name:
            data = _checked(pack, f"{member}/{readme_name}", listed)
            fileops.write_durable(str(out / readme_name), data)
            report.tars.append(str(out / readme_name))
    return report


def _checked(pack: Path, rel: str, listed: dict[str, str]) -> bytes:
    with os.fdopen(fileops.open_source(str(pack / rel), follow=False), "rb") as fh:
        data = fh.read()
    if hashlib.sha256(data).hexdigest() != listed.get(rel):
        raise Qa2Error(f"{pack}: refused to archive: {rel}: sha256 differs from the manifest "
                       "(changed or corrupted); no tar was published [manifest.checksum]")
    return data



def _renamed_readmes(pack: Path, members: list[str], renames: dict[str, str],
                     listed: dict[str, str]) -> dict[str, bytes]:
    """The README of each renamed member as the tar holds it: its listing starts at the
    member's name in the tar, not at the placeholder (qa2core.writing.readme.renamed). Each is read
    once, and that read is the one checked against the manifest."""
    out = {}
    for member in members if renames else []:
        old = member.split("/")[-1]
        rel = f"{member}/README"
        if renames.get(old, old) == old or not (pack / rel).is_file():
            continue
        data = _checked(pack, rel, listed)
        new = readme.renamed(data, old, renames[old])
        if new != data:
            out[rel] = new
    return out


def remove_partials(out: Path, name: str) -> list[Path]:
    """Remove ``out/NAME.*.partial`` files (``NAME`` a tar's name, or a glob of them) that no
    process is writing: each writer holds an exclusive ``flock`` on its partial file while it
    writes (:func:`_partial`), which the kernel lets go when it dies, kill -9 included. A file
    someone holds is left alone. The removed paths."""
    import fcntl

    removed = []
    for path in sorted(out.glob(f"{name}.*.partial")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            here, held = os.lstat(path), os.fstat(fd)
            if (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
                path.unlink()
                removed.append(path)
        except OSError:  # held by a writer, or gone meanwhile
            pass
        finally:
            os.close(fd)
    return removed


def _partial(path: Path) -> tuple[int, Path]:
    """A partial file of our own for ``path``, locked (``flock``) while we write it, so that
    :func:`remove_partials` of another run can tell it from a killed run's leftover."""
    import fcntl
    import tempfile

    while True:
        fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            here, held = os.lstat(name), os.fstat(fd)
            if (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
                return fd, Path(name)
        except OSError:  # another run's cleanup took it between mkstemp and flock: again
            pass
        os.close(fd)


def _publish(tmp: Path, path: Path) -> None:
    """Give the written tar its name, never over another's: of two runs writing one name the
    second stops here (a rename would replace the first's tar and leave the first's sums beside
    the second's bytes). A rename only where the file system has no hard links."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise Qa2Error(f"{path}: exists (written meanwhile by another run); remove it or choose "
                       "--out") from None
    except OSError as exc:
        if exc.errno not in fileops.LINK_FALLBACK_ERRNOS:
            raise
        os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _member_uid(members: list[str]) -> str | None:
    if len(members) == 1 and members[0].split("/")[-1].startswith("member.uid___"):
        return members[0].split("/")[-1].removeprefix("member.")
    return None


def _renamed_manifest(proj: str, listed: dict[str, str] | None, renames: dict[str, str],
                      readmes: dict[str, bytes] | None = None) -> bytes | None:
    if listed is None:
        return None
    readmes = readmes or {}
    renamed = {_arcname(proj, k, renames).split("/", 1)[1]:
               hashlib.sha256(readmes[k]).hexdigest() if k in readmes else v
               for k, v in listed.items()}
    return manifest.encode(manifest.format_lines(renamed.items()))


def _portable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0  # the reducer's account means nothing to the PI
    info.uname = info.gname = ""
    return info


class _HashingReader:
    """The stream tarfile copies from, hashed as it is read: what the tar holds is what was
    compared with the manifest, in the same read."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        return data


def _write_tar(path: Path, pack: Path, volume: list[str], dirs: list[str], renames: dict[str, str],
               manifest_bytes: bytes | None, report: TarReport, listed: dict[str, str],
               readmes: dict[str, bytes] | None = None) -> None:
    import io

    proj = pack.name
    # A name of our own: two tars at once never touch each other's partial file.
    fd, tmp = _partial(path)
    hold = os.dup(fd)  # the partial file's flock, held until it is published or removed
    made: list[Path] = []  # what this call put in place, taken back if it cannot finish
    try:
        with os.fdopen(fd, "wb") as raw:
            out = _TwoHashWriter(raw)
            # A name's bytes as they are (surrogateescape), not the locale's idea of them.
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT,
                              encoding="utf-8", errors="surrogateescape") as tar:
                for rel in dirs:
                    tar.add(pack / rel, arcname=_arcname(proj, rel, renames), recursive=False,
                            filter=_portable)
                for rel in volume:
                    with os.fdopen(fileops.open_source(str(pack / rel), follow=False), "rb") as fh:
                        info = _portable(tar.gettarinfo(arcname=_arcname(proj, rel, renames),
                                                        fileobj=fh))
                        if readmes and rel in readmes:  # checked when it was read (_archive)
                            info.size = len(readmes[rel])
                            tar.addfile(info, io.BytesIO(readmes[rel]))
                            continue
                        reader = _HashingReader(fh)
                        tar.addfile(info, reader)
                        if reader.sha.hexdigest() != listed.get(rel):
                            raise Qa2Error(f"{pack}: refused to archive: {rel}: sha256 "
                                           "differs from the manifest, read as it was written "
                                           "into the tar (changed or corrupted); no tar was "
                                           "published [manifest.checksum]")
                if manifest_bytes is not None:
                    info = _portable(tarfile.TarInfo(f"{proj}/{manifest.NAME}"))
                    info.size = len(manifest_bytes)
                    info.mtime = int((pack / manifest.NAME).stat().st_mtime)
                    tar.addfile(info, io.BytesIO(manifest_bytes))
        sha, md5 = out.sha.hexdigest(), out.md5.hexdigest()
        os.chmod(tmp, 0o666 & ~_umask())  # as any file the user writes (mkstemp makes 0600)
        with open(tmp, "rb") as fh:  # on disk before its name says it is whole
            os.fsync(fh.fileno())
        _publish(tmp, path)
        made.append(path)
        for suffix, digest in zip(SUM_SUFFIXES, (sha, md5), strict=True):
            with open(path.with_name(path.name + suffix), "x") as fh:  # never over another's
                made.append(path.with_name(path.name + suffix))
                fh.write(f"{digest}  {path.name}\n")
                fh.flush()
                os.fsync(fh.fileno())
        fileops.fsync_dir(str(path.parent))
    except BaseException as exc:
        for done in made:
            done.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:  # a failed write names no file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
        os.close(hold)
    report.tars.append(str(path))
    report.sha256[path.name] = sha
    report.md5[path.name] = md5
