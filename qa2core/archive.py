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

from qa2core import fileops, manifest, ous
from qa2core.errors import Qa2Error
from qa2core.verify import members_of

DEFAULT_MAX_BYTES = 100 * 2**30  # 100 GiB per volume; documented in docs/reliability.md


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
              max_bytes: int = DEFAULT_MAX_BYTES) -> TarReport:
    pack = Path(packpath)
    if not pack.is_dir():
        raise Qa2Error(f"{packpath}: not a directory, so not a qa2 package")
    members = members_of(pack)
    if not members:
        raise Qa2Error(f"{packpath}: not a qa2 package (no OUS directory chain below it)")
    report = TarReport()
    uids = ous.parse_uids(ous_uids) if ous_uids else None
    renames = _rename_map(members, uids)
    mous = uids.member if uids else _member_uid(members)
    if mous is None:
        report.warnings.append("placeholder OUS names in the tar: JAO ingestion refuses them; "
                               "give --ous-uids SOUS,GOUS,MOUS")
    tops = sorted({m.split("/")[0] for m in members})
    files = [(p.relative_to(pack).as_posix(), p.stat().st_size)
             for top in tops for p in fileops.iter_files(pack / top)]
    dirs = sorted({d.relative_to(pack).as_posix() for top in tops
                   for d in [pack / top, *(pack / top).rglob("*")] if d.is_dir()})
    volumes = _volumes(files, max_bytes)
    base = f"{pack.name}_{mous}" if mous else pack.name
    names = [f"{base}_{i:03d}_of_{len(volumes):03d}.tar" for i in range(1, len(volumes) + 1)]
    out = out_dir or pack.parent
    for name in names:
        for suffix in ("", ".sha256", ".md5sum"):
            if (out / (name + suffix)).exists():
                raise Qa2Error(f"{out / (name + suffix)}: exists; remove it or choose --out")
    listed = manifest.read(pack) if (pack / manifest.NAME).exists() else None
    for number, (name, volume) in enumerate(zip(names, volumes, strict=True)):
        extra = _renamed_manifest(pack.name, listed, renames) if number == len(names) - 1 else None
        _write_tar(out / name, pack, volume, dirs if number == 0 else [], renames, extra, report)
    return report


def _member_uid(members: list[str]) -> str | None:
    if len(members) == 1 and members[0].split("/")[-1].startswith("member.uid___"):
        return members[0].split("/")[-1].removeprefix("member.")
    return None


def _renamed_manifest(proj: str, listed: dict[str, str] | None, renames: dict[str, str]) -> bytes | None:
    if listed is None:
        return None
    renamed = {_arcname(proj, k, renames).split("/", 1)[1]: v for k, v in listed.items()}
    return manifest.format_lines(renamed.items()).encode()


def _write_tar(path: Path, pack: Path, volume: list[str], dirs: list[str], renames: dict[str, str],
               manifest_bytes: bytes | None, report: TarReport) -> None:
    import io

    proj = pack.name
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "xb") as raw:
            out = _TwoHashWriter(raw)
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
                for rel in dirs:
                    tar.add(pack / rel, arcname=_arcname(proj, rel, renames), recursive=False)
                for rel in volume:
                    tar.add(pack / rel, arcname=_arcname(proj, rel, renames), recursive=False)
                if manifest_bytes is not None:
                    info = tarfile.TarInfo(f"{proj}/{manifest.NAME}")
                    info.size = len(manifest_bytes)
                    info.mtime = int((pack / manifest.NAME).stat().st_mtime)
                    tar.addfile(info, io.BytesIO(manifest_bytes))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sha, md5 = out.sha.hexdigest(), out.md5.hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{sha}  {path.name}\n")
    path.with_name(path.name + ".md5sum").write_text(f"{md5}  {path.name}\n")
    report.tars.append(str(path))
    report.sha256[path.name] = sha
    report.md5[path.name] = md5
