"""Movement: the final segmentations applied as of T - H, and who moved where by T."""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from custseg.backtest import backtest_date
from custseg.movement import MOVE_COLUMNS, migration, migration_summary
from custseg.record import MovementSection, Skipped, frozen
from custseg.settings import Settings
from custseg.stages import Store
from custseg.stages.backtest import Backtest
from custseg.stages.customers import RFM, Features
from custseg.stages.segments import Segments, assigned


@frozen
class Movement:
    """The customers as of T - H in the final segments, and the record's movement section.

    ``then`` holds customer_id, segment, rfm_segment, monetary and revenue_90d of each customer as
    of T - H (None without customers then).
    """

    movement: MovementSection | Skipped
    then: ir.Table | None = None


def segment_movement(
    *, backtest: Backtest, rfm: RFM, segments: Segments, features: Features, settings: Settings, store: Store
) -> Movement:
    """Apply the final segmentations (learned and RFM) to the customers as of T - H; count who moved where by T."""
    if backtest.table is None:
        return Movement(movement=Skipped(reason=f"no customers as of T - H: {backtest.backtest.reason}"))
    horizon = settings.backtest.horizon_days
    then = rfm.scorer.transform(backtest.table)
    if segments.segmentation is not None:
        then = assigned(store, then, segments.segmentation)
    else:
        then = then.mutate(segment=ibis.null(dt.string))
    then = store.cache("customers_then", then.select("customer_id", "segment", "rfm_segment", *MOVE_COLUMNS[1:]))
    first, second = backtest_date(features.as_of, horizon).date(), features.as_of.date()
    learned = None
    if segments.segmentation is not None:
        flows = migration(then, segments.table, "segment").execute()
        learned = migration_summary(flows, segments.names, first, second)
    flows = migration(then, segments.table, "rfm_segment").execute()
    section = MovementSection(horizon_days=horizon, learned=learned, rfm=migration_summary(flows, {}, first, second))
    return Movement(movement=section, then=then)
