"""Member-prefixed file names of the Cycle >= 5 styles (docs/layout-rules.md, "Cycle 5 and later").

Since Cycle 5 the archive holds a member's files one by one, each named after its member OUS:
``member.<MOUS>.README.txt``, ``member.<MOUS>.scriptForPI.py``, and every pipeline product the
pipeline named ``<MOUS>.…`` (docs/domain.md §2.2). With placeholders the token is the member
placeholder, so the names can be renamed mechanically once the UIDs are known: replace
``member_ouss_id`` by ``member.<MOUS>`` in every name. Names after an execution block
(``uid___A002_….ms.flagversions.tgz``) and the reducer's own scripts keep their names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from qa2core.errors import Qa2Error
from qa2core.hooks.model import Delivery, Mode, Purpose
from qa2core.planning import ous

if TYPE_CHECKING:
    from qa2core.hooks.manager import Decision, Qa2Plugins
    from qa2core.planning.requests import PackageRequest

PLACEHOLDER_TOKEN = "member_ouss_id"
README = "README"  # the older styles' member README
PISCRIPT = "script/scriptForPI.py"
REWRITE_MAX_BYTES = 16 * 2**20  # a pipeline manifest is a few kB


def token(uids: ous.OusUids | None) -> str:
    """``member.<MOUS>`` with real UIDs, the placeholder token without."""
    return uids.names()[2] if uids is not None else PLACEHOLDER_TOKEN


def readme_name(member_token: str | None) -> str:
    return README if member_token is None else f"{member_token}.README.txt"


def piscript_dest(member_token: str | None) -> str:
    return PISCRIPT if member_token is None else f"script/{member_token}.scriptForPI.py"


def member_file(name: str, mous: str | None, member_token: str | None) -> str:
    """``<MOUS>.rest`` -> ``<token>.rest`` (a base name); any other name is kept."""
    if member_token is None or not mous or not name.startswith(mous + "."):
        return name
    return member_token + name[len(mous):]


def rename_dest(dest: str, mous: str | None, member_token: str | None) -> str:
    """:func:`member_file` on the base name of a member-relative destination."""
    folder, _, name = dest.rpartition("/")
    renamed = member_file(name, mous, member_token)
    return f"{folder}/{renamed}" if folder else renamed


def is_readme(name: str) -> bool:
    """A member directory's README, in any style: ``README`` or ``<token>.README.txt``."""
    return name == README or name.endswith(".README.txt")


def readme_of(files: Iterable[str]) -> str | None:
    """The README among a member directory's top-level files (first by name), or None."""
    found = sorted(f for f in files if "/" not in f and is_readme(f))
    return found[0] if found else None


def modern(files: Iterable[str]) -> bool:
    """A member directory in the Cycle >= 5 shape: its README is named after the member."""
    readme = readme_of(files)
    return readme is not None and readme != README


def rewrite(data: bytes, renames: Iterable[tuple[str, str]]) -> bytes:
    """Each quoted value ``"old"`` or ``'old'`` (XML attribute values) becomes ``"new"`` or
    ``'new'``; nothing else changes, byte for byte."""
    table = {f"{q}{old}{q}".encode(): f"{q}{new}{q}".encode()
             for old, new in renames for q in "\"'"}
    if not table:
        return data
    pattern = re.compile(b"|".join(re.escape(k) for k in sorted(table, key=len, reverse=True)))
    return pattern.sub(lambda m: table[m.group(0)], data)


def member_names(req: PackageRequest, plugins: Qa2Plugins, decision: Decision, delivery: Delivery,
                  warnings: list[str], errors: list[str]) -> tuple[ous.OusUids | None, str | None]:
    """The OUS UIDs (None: placeholders) and the member token of the Cycle >= 5 styles.

    Placeholders unless asked for (docs/contract.md), except for styles that name files after
    the member (``Style.member_prefix``): they take the UIDs the input's names give, as
    ``--ous-uids auto`` does, and a real run without them asks for them (a line in ``errors``,
    refused with the input's other problems; the plan is made with the placeholders)."""
    modern = req.style.member_prefix and req.purpose is Purpose.PACKAGE
    uids = req.uids
    if uids is None and (req.auto_uids or (modern and not req.placeholder_uids)):
        uids = plugins.ous_uids(decision.plugin, delivery, decision.context)
    if uids is None and req.auto_uids:
        raise Qa2Error(f"--ous-uids auto: {decision.plugin} finds no SOUS, GOUS and MOUS UIDs "
                       f"in the names of {req.origpath} (its claim: {decision.claim.reason}); "
                       "give them as --ous-uids SOUS,GOUS,MOUS (qa2 stage prints them for the "
                       "run it stages), or leave the option out to keep the placeholders",
                       plugin=decision.plugin)
    if not modern:
        return uids, None
    if uids is None and not req.placeholder_uids:
        how = (f"style {req.style.name} names the member's files after its MOUS "
               f"(member.<MOUS>.README.txt), and {decision.plugin} finds no SOUS, GOUS and MOUS "
               f"UIDs in the names of {req.origpath}: give them as --ous-uids SOUS,GOUS,MOUS "
               "(from the run's SOUS_/GOUS_/MOUS_ directories, which qa2 stage prints, the "
               "PPR's OUSStatusRef, an earlier delivery's science_goal./group./member. names, "
               "or the archive's entry of the project), or --ous-uids placeholders for "
               "member_ouss_id names to rename later")
        if req.mode in (Mode.COPY, Mode.HARD):
            errors.append(f"{req.origpath}: {how} [names.ous_uids]")
        else:
            warnings.append(f"{how}; this rehearsal uses the placeholders [names.ous_uids]")
    return uids, token(uids)
