"""What every section of the run record is built of: frozen dataclasses, tables as records, a skipped stage."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

Records = list[dict[str, Any]]
"""A table inside the record: one dict per row, keyed by the table's column names."""

frozen = functools.partial(dataclass, frozen=True, kw_only=True)


@frozen
class Skipped:
    """A stage that ran and had nothing to do, and why (run.json: ``{"skipped": reason}``)."""

    reason: Annotated[str, Field(alias="skipped")]
