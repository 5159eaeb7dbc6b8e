"""Names of the OUS directory chain inside PACKPATH, and where an append puts the new unit.

The packager writes placeholders (docs/domain.md §2.2): ``sg_ouss_id/group_ouss_id/member_ouss_id``.
Appended groups and members are numbered ``group_ouss_2_id``, ``member_ouss_2_id`` … after the
only observed variant, Cycle 0's ``member_ouss_<date>_id`` (docs/domain.md §9 Q2): the number keeps
"the highest group" well defined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from qa2core.errors import Qa2Error, UsageError
from qa2core.hooks.model import UID

SG = "sg_ouss_id"
_NUMBERED = re.compile(r"^(group|member)_ouss(?:_(\d+))?_id$")
APPEND_MODES = ("none", "group", "member")
PROJECT_CODE = re.compile(r"^\d{4}\.\d\.\d{5}\.[A-Z]+$")  # PACKPATH's name, e.g. 2016.1.01435.S


@dataclass(frozen=True)
class OusUids:
    """Real OUS UIDs, sanitized (``uid___A001_X87c_X69``), for ingestion-ready names."""

    sg: str
    group: str
    member: str

    def names(self) -> tuple[str, str, str]:
        return f"science_goal.{self.sg}", f"group.{self.group}", f"member.{self.member}"


def sanitize_uid(uid: str) -> str:
    """``uid://A001/X87c/X69`` -> ``uid___A001_X87c_X69`` (docs/domain.md §1); checked."""
    text = uid.strip()
    if text.startswith("uid://"):
        text = "uid___" + text[len("uid://"):].replace("/", "_").replace(":", "_")
    if not UID.fullmatch(text):
        raise UsageError(f"{uid!r} is not an ALMA UID (want uid://A001/X87c/X69 or "
                         "uid___A001_X87c_X69)")
    return text


def parse_uids(text: str) -> OusUids:
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) != 3:
        raise UsageError(f"--ous-uids {text!r}: give three UIDs, SOUS,GOUS,MOUS")
    return OusUids(*(sanitize_uid(p) for p in parts))


def placeholder(level: str, number: int) -> str:
    return f"{level}_ouss_id" if number == 1 else f"{level}_ouss_{number}_id"


def numbers(directory: Path, level: str) -> list[int]:
    """Numbers of the existing ``level`` placeholders in ``directory`` (1 for the bare name)."""
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        m = _NUMBERED.match(child.name)
        if m and m.group(1) == level and child.is_dir():
            found.append(int(m.group(2) or 1))
    return sorted(found)


@dataclass(frozen=True)
class Target:
    """``unit``: the new top directory a run builds (relative to PACKPATH), renamed into place
    in one step; ``member``: the member directory inside it (relative to PACKPATH)."""

    unit: str
    member: str


def target(packpath: Path, append: str, uids: OusUids | None = None) -> Target:
    if uids is not None:
        return _real_target(packpath, append, uids)
    sg = packpath / SG
    groups = numbers(sg, "group")
    if append in ("group", "member") and not sg.is_dir():
        _refuse_real_names(packpath, append)
    if append == "none" or not sg.is_dir():
        if append == "member":
            raise Qa2Error(f"{packpath}: --append member needs an existing package with a group "
                           "(none found); package it first with --append none")
        return Target(SG, f"{SG}/{placeholder('group', 1)}/{placeholder('member', 1)}")
    if append == "group":
        group = placeholder("group", (groups[-1] if groups else 0) + 1)
        return Target(f"{SG}/{group}", f"{SG}/{group}/{placeholder('member', 1)}")
    if not groups:
        raise Qa2Error(f"{sg}: --append member needs a group to add to, and there is none")
    group = placeholder("group", groups[-1])
    member = placeholder("member", (numbers(sg / group, "member") or [0])[-1] + 1)
    return Target(f"{SG}/{group}/{member}", f"{SG}/{group}/{member}")


def _uid_url(name: str) -> str:
    """``group.uid___A001_X87c_X68`` -> ``uid://A001/X87c/X68``."""
    return name.partition(".")[2].replace("uid___", "uid://", 1).replace("_", "/")


def _refuse_real_names(packpath: Path, append: str) -> None:
    """An append without --ous-uids onto a package whose OUS directories have real names.
    Not resolved by guessing: the new unit needs its own UID (the MOUS of the SB added, or the
    GOUS of the group), which only the user knows, and a placeholder beside real names makes a
    package no ingestion takes. So: name the chain found and the value to give."""
    chains = [f"{sg.name}/{group.name}"
              for sg in sorted(packpath.glob("science_goal.uid___*")) if sg.is_dir()
              for group in sorted(sg.glob("group.uid___*")) if group.is_dir()]
    if not chains:
        return
    sg_name, group_name = chains[-1].split("/")
    value = (f"{_uid_url(sg_name)},{_uid_url(group_name)},<MOUS>" if append == "member" else
             f"{_uid_url(sg_name)},<GOUS>,<MOUS>")
    unit = "the new member's MOUS" if append == "member" else "the new group's GOUS and MOUS"
    also = f" ({len(chains)} groups: {', '.join(chains)})" if len(chains) > 1 else ""
    raise Qa2Error(f"{packpath / chains[-1]}: --append {append}: the package has real OUS "
                   f"names{also}, no placeholders; give {unit} with --ous-uids {value} "
                   "[append.ous_uids]")


def _real_target(packpath: Path, append: str, uids: OusUids) -> Target:
    """Ingestion-ready names: each level is its UID, so an append names an exact place."""
    sg, group, member = uids.names()
    full = f"{sg}/{group}/{member}"
    if append == "none" or (append == "group" and not (packpath / sg).is_dir()):
        return Target(sg, full)
    if append == "group":
        if (packpath / sg / group).exists():
            raise Qa2Error(f"{packpath / sg / group}: exists; --append group never overwrites")
        return Target(f"{sg}/{group}", full)
    if not (packpath / sg / group).is_dir():
        raise Qa2Error(f"{packpath / sg / group}: --append member needs this group, and it does "
                       "not exist; package it first with --append none or group")
    if (packpath / full).exists():
        raise Qa2Error(f"{packpath / full}: exists; --append member never overwrites a member")
    return Target(full, full)


def members_of(pack: Path) -> list[str]:
    """Member directories (relative to PACKPATH) of the three-level OUS chain (no links)."""
    def dirs(p: Path) -> list[Path]:
        return sorted(c for c in p.iterdir() if c.is_dir() and not c.is_symlink())

    return [f"{sg.name}/{group.name}/{m.name}"
            for sg in dirs(pack) for group in dirs(sg) for m in dirs(group)]
