"""The run record's interests section: customer interest groups and how well they tell what customers buy next."""

from __future__ import annotations

import datetime

from custseg.record.base import Records, frozen


@frozen
class MixPrediction:
    """Out-of-fold mean cross-entropy (nats) of the next H days' category mix of the backtest customers.

    ``groups``: each customer's group's mix; ``shop``: the shop's average mix; ``own_past``: the
    customer's own past mix (blended with the shop's), the ceiling a grouping approaches.
    ``reduction`` is (shop - groups) / shop.
    """

    customers: int
    groups: float
    shop: float
    own_past: float
    reduction: float
    own_past_reduction: float


@frozen
class InterestsSection:
    """Customer interest groups: learned as of T - H, certified on the next H days, applied as of T."""

    as_of: datetime.datetime
    method: str
    criterion: str
    chosen: int
    candidates: Records
    backtest: MixPrediction
    groups: Records
