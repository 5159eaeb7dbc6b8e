"""The Pipeline Processing Request (PPR), read namespace-agnostically (domain.md §5.1).

``SciPipeRequest/ProjectSummary/ProposalCode``; ``ProjectStructure/AlmaStructure/OUSStatusRef@entityId``
(the MOUS); ``ProcessingRequests/.../ProcessingProcedure/ProcedureTitle`` (the recipe) and
``.../SchedBlockIdentifier/{SBTitle, AsdmIdentifier/{AsdmRef/ExecBlockId, AsdmDiskName}}``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 4 << 20  # a PPR is a few kB; anything this big is not one
SANITIZED_UID = re.compile(r"^uid___A\d{3}_X[0-9a-f]+_X[0-9a-f]+$")


@dataclass(frozen=True)
class Ppr:
    ous: str  # sanitized OUSStatusRef entityId ("" when the PPR has none)
    proposal: str
    recipe: str  # e.g. hifa_calimage, hsd_calimage ("" when unknown)
    asdms: tuple[str, ...]  # AsdmDiskName values, in document order
    commands: tuple[str, ...]

    @property
    def single_dish(self) -> bool:
        return self.recipe.startswith("hsd") or any(c.startswith("hsd_") for c in self.commands)


def sanitize(uid: str) -> str:
    """``uid://A001/X87c/X69`` -> ``uid___A001_X87c_X69`` (domain.md §1)."""
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
    """Parse PPR bytes; raises ``ValueError`` when they are not well-formed XML."""
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
    return Ppr(ous, proposal, recipe, tuple(asdms), tuple(commands))


def read(path: Path) -> Ppr | None:
    """The PPR at ``path``, or ``None`` when it cannot be read or parsed (validation says why)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        return parse(path.read_bytes())
    except (OSError, ValueError):
        return None
