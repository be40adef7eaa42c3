"""The stages of a run: each a function of the earlier stages' results, the settings and a date.

Each module here is one stage: a function that takes the results it names as keyword-only
arguments (``read``, ``clean``, ``products``, ``features``, ...) and the settings, calls the module
that does the work (`custseg.clean`, `custseg.features`, `custseg.cluster`, ...) and returns a
frozen dataclass holding its tables and its sections of the run record (`custseg.record`). The
plan (`custseg.pipeline`) lists the stages once and walks them for `custseg run`, `custseg assign`
and the notebook's `custseg.Stages`; it decides which tables the output folder keeps. A stage
only caches intermediate tables in the engine (`Store.cache`); they vanish when the run ends.
"""

from __future__ import annotations

from typing import Any, Protocol

import ibis.expr.types as ir
import pandas as pd


class Store(Protocol):
    """Where a stage computes: the engine, and a cache of intermediate tables for the run's duration."""

    engine: Any

    def cache(self, name: str, table: ir.Table | pd.DataFrame) -> ir.Table:
        """Compute ``table`` into a temporary table of the engine and return it."""
        ...
