"""The plugin's view of one input, built once by ``qa2_detect`` (its ``Claim.context``).

Everything that needs only names, types and sizes is worked out when the object is made (the
survey, the MOUS the names tell, which item is the PPR). The PPR is read lazily, once, the
first time a hook asks for it (``qa2_collect`` in a packaging run); ``identity`` follows from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from qa2_pipeline import ppr
from qa2_pipeline.survey import (
    STAGED,
    Identity,
    Survey,
    identity,
    names_mous,
    ppr_candidates,
    single_dish_name,
    survey,
)
from qa2core import Delivery, Purpose, SourceItem

if TYPE_CHECKING:
    from qa2core import Finding


@dataclass(frozen=True)
class PprRead:
    """The input's PPR as read: the request, or why it could not be read."""

    request: ppr.Ppr | None
    error: str = ""


@dataclass(eq=False)
class PipelineInput:
    """What ``qa2_detect`` made of a delivery; handed back to every other hook as ``context``.

    ``ppr_dest`` is the member path at which the input's PPR lands: set by ``qa2_layout`` when
    it places it, and in ``qa2 verify`` (the input is the package) the path it already has.
    ``qa2_validate`` uses it to check that file from :attr:`ppr` instead of parsing it again.
    """

    delivery: Delivery
    survey: Survey
    ppr_dest: str = field(default="")

    @classmethod
    def of(cls, delivery: Delivery) -> PipelineInput:
        return cls(delivery, survey(delivery))

    def __post_init__(self) -> None:
        if (not self.ppr_dest and self.delivery.options.purpose is Purpose.VERIFY
                and self.survey.shape == STAGED and len(self.survey.bases) == 1
                and self.ppr_item is not None):
            self.ppr_dest = self.survey.place(self.ppr_item).area + "/" + \
                self.survey.place(self.ppr_item).inner

    # ------------------------------------------------------------------ from names only

    @cached_property
    def ppr_item(self) -> SourceItem | None:
        """The PPR that counts (products/ ``PPR_*.xml`` first; see rules.ROLE_PREFERENCE)."""
        candidates = ppr_candidates(self.delivery, self.survey)
        return candidates[0] if candidates else None

    @cached_property
    def mous_by_name(self) -> str:
        return names_mous(self.delivery, self.survey)

    def mous_words(self) -> str:
        """How ``qa2_detect`` names the MOUS without reading anything."""
        if self.mous_by_name:
            return f"MOUS {self.mous_by_name}"
        return "MOUS from PPR" if self.ppr_item is not None else "unknown MOUS"

    @cached_property
    def single_dish_name(self) -> str:
        """The name that shows single-dish (hsd) pipeline data ("" if none)."""
        return single_dish_name(self.delivery, self.survey)

    def single_dish_words(self) -> str:
        """What ``qa2_detect`` adds to its reason for single-dish data, from names only."""
        name = self.single_dish_name
        return f"; single-dish Total Power (hsd) data: {name}" if name else ""

    # ------------------------------------------------------------------ read once, on demand

    @cached_property
    def ppr(self) -> PprRead:
        """The PPR, read and parsed at most once per run."""
        if self.ppr_item is None:
            return PprRead(None, "no PPR")
        try:
            return PprRead(ppr.read(self.delivery.root / self.ppr_item.relpath))
        except ValueError as exc:
            return PprRead(None, str(exc))

    @cached_property
    def identity(self) -> Identity:
        return identity(self.delivery, self.survey, self.ppr_item, self.ppr.request,
                        self.single_dish_name)

    def input_findings(self) -> tuple[Finding, ...]:
        """Problems of the input itself: the survey's, then the notes on its identity."""
        return (*self.survey.problems, *self.identity.notes)

    def ppr_at(self, member_path: str) -> PprRead | None:
        """The input's PPR when ``member_path`` is where it lands in the member directory;
        ``None`` when that file is not known to be it (read it from the view then)."""
        if self.ppr_item is None or not self.ppr_dest or member_path != self.ppr_dest:
            return None
        return self.ppr
