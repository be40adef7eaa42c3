"""custseg's side of the features benchmark, run as a child process.

``lines PATH [MEMORY_LIMIT]``: the features stage alone, from a Parquet file of ``lines``.
``log PATH OUT [MEMORY_LIMIT]``: from the raw log to the customers table (read, clean, features).
Prints the stage's seconds and the number of customers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ibis

from custseg.engine import EngineOptions
from custseg.features import customer_features, reference_date
from custseg.pipeline import run
from custseg.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import peak_mb  # noqa: E402


def from_lines(path: str, memory_limit: str | None) -> tuple[float, int]:
    start = time.perf_counter()
    config = {"memory_limit": memory_limit} if memory_limit else {}
    backend = ibis.duckdb.connect(**config)
    backend.raw_sql("SET enable_progress_bar = false")
    lines = backend.read_parquet(path)
    as_of = reference_date(lines.invoiced_at.max().execute())
    customers = customer_features(lines, as_of).to_pyarrow()
    return time.perf_counter() - start, customers.num_rows


def from_log(path: str, out: str, memory_limit: str | None) -> tuple[float, int]:
    start = time.perf_counter()
    result = run(path, out, Settings(engine=EngineOptions(memory_limit=memory_limit)), until="features")
    return time.perf_counter() - start, result.record.customers.count


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "lines":
        seconds, customers = from_lines(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        seconds, customers = from_log(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    print(f"{seconds:.3f} {customers} {peak_mb():.0f}")
