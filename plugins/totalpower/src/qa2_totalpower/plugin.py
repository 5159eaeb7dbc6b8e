"""Hook implementations (skeleton: declines every input until its rules land)."""

from __future__ import annotations

from qa2core import Claim, Delivery, hookimpl


@hookimpl
def qa2_detect(delivery: Delivery) -> Claim | None:
    return None
