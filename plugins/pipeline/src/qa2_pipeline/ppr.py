"""The Pipeline Processing Request (PPR), read namespace-agnostically (docs/domain.md §5.1).

``SciPipeRequest/ProjectSummary/ProposalCode``; ``ProjectStructure/AlmaStructure/OUSStatusRef@entityId``
(the MOUS); ``ProcessingRequests/.../ProcessingProcedure/ProcedureTitle`` (the recipe) and
``.../SchedBlockIdentifier/{SBTitle, AsdmIdentifier/{AsdmRef/ExecBlockId, AsdmDiskName}}``.

A PPR is a few kB of XML, so it is read whole, but never more than :data:`MAX_BYTES`, and a
document that declares entities is refused before parsing (no entity expansion, the
"billion laughs"; expat's own amplification limit stays as a second guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET
    from pathlib import Path

MAX_BYTES = 4 << 20  # a PPR is a few kB; anything this big is not one


@dataclass(frozen=True)
class Ppr:
    ous: str  # sanitized OUSStatusRef entityId ("" when the PPR has none)
    proposal: str
    recipe: str  # e.g. hifa_calimage, hsd_calimage ("" when unknown)
    asdms: tuple[str, ...]  # AsdmDiskName values, in document order
    commands: tuple[str, ...]
    # <AsdmDiskName> elements not written literally so (xmlns="" or another attribute, a
    # prefix): every scriptForPI version matches the literal tag, and misses them
    unliteral_asdms: int = 0

    @property
    def single_dish(self) -> bool:
        return self.recipe.startswith("hsd") or any(c.startswith("hsd_") for c in self.commands)


def sanitize(uid: str) -> str:
    """``uid://A001/X87c/X69`` -> ``uid___A001_X87c_X69`` (docs/domain.md §1)."""
    uid = uid.strip()
    if uid.startswith("uid://"):
        uid = "uid___" + uid[len("uid://"):]
    return uid.replace("/", "_").replace(":", "_")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: ET.Element, name: str) -> str:
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return ""


def _recipe(title: str) -> str:
    """``procedure_hifa_calimage.xml`` and ``hifa_calimage`` both give ``hifa_calimage``."""
    title = title.strip()
    return title.removeprefix("procedure_").removesuffix(".xml")


def parse(data: bytes) -> Ppr:
    """Parse PPR bytes; raises ``ValueError`` (saying why) when they are not a PPR's XML."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES >> 20} MiB: not a PPR")
    if b"<!ENTITY" in data:
        raise ValueError("declaring XML entities (refused: entity expansion)")
    import xml.etree.ElementTree as ET  # here: only a pipeline input has a PPR to read

    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from exc
    ous, proposal, recipe = "", "", ""
    asdms: list[str] = []
    commands: list[str] = []
    for element in root.iter():
        name = _local(element.tag)
        text = (element.text or "").strip()
        if name == "OUSStatusRef" and not ous:
            ous = sanitize(_attr(element, "entityId")) if _attr(element, "entityId") else ""
        elif name == "ProposalCode" and not proposal:
            proposal = text
        elif name == "ProcedureTitle" and not recipe:
            recipe = _recipe(text)
        elif name == "AsdmDiskName":
            asdms.append(text)
        elif name == "Command" and text:
            commands.append(text)
    literal = data.count(b"<AsdmDiskName>")
    return Ppr(ous, proposal, recipe, tuple(asdms), tuple(commands), max(0, len(asdms) - literal))


def read_stream(fh: BinaryIO) -> Ppr:
    """The PPR in an open binary stream (at most ``MAX_BYTES + 1`` bytes are read)."""
    try:
        data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"unreadable ({exc})") from exc
    return parse(data)


def read(path: Path) -> Ppr:
    """The PPR at ``path``; raises ``ValueError`` saying why when it cannot be read or parsed."""
    try:
        with path.open("rb") as fh:
            return read_stream(fh)
    except OSError as exc:
        raise ValueError(f"unreadable ({exc.strerror or exc})") from exc
