"""Segments a shop can keep: does a month more data give the same segments?

A shop that runs custseg monthly needs segments it can follow. For a log and two dates a month
apart, this runs custseg as of the earlier date, then as of the later one twice: a fresh fit, and
the earlier run's segments kept (``--segments-from``). It prints the adjusted Rand index between the
kept and the fresh segments of the later date's customers, both rule sets, and the kept run's
comparison of their validity on the later backtest.

    python benchmarks/stability.py [--data PATH] [--earlier 2011-11-10] [--later 2011-12-10]
    python benchmarks/stability.py --simulated 1 2 3
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from custseg.pipeline import run
from custseg.settings import load_settings
from custseg.simulate import simulate_to_files

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "online_retail.parquet"


def compare(data, earlier: str, later: str | None, folder: Path) -> dict:
    """Run as of ``earlier``, then as of ``later`` fresh and with the earlier segments kept."""
    first = run(data, folder / "earlier", load_settings(None, as_of=earlier))
    fresh = run(data, folder / "fresh", load_settings(None, as_of=later), until="segments")
    kept = run(
        data,
        folder / "kept",
        load_settings(None, as_of=later, segments_from=str(first.out_dir)),
        until="segments",
    )
    segments = {}
    for name, result in (("fresh", fresh), ("kept", kept)):
        with duckdb.connect(str(result.out_dir / "custseg.duckdb"), read_only=True) as con:
            segments[name] = con.sql("select customer_id, segment from customers").df().set_index("customer_id").segment
    both = segments["fresh"].index.intersection(segments["kept"].index)
    return {
        "customers": len(both),
        "ari": adjusted_rand_score(segments["fresh"][both], segments["kept"][both]),
        "earlier_rules": [(r["segment"], r["rule"]) for r in first.record.segments.rules or []],
        "fresh_rules": [(r["segment"], r["rule"]) for r in fresh.record.segments.rules or []],
        "kept": kept.record.segments.kept,
    }


def show(label: str, found: dict) -> None:
    print(f"## {label}: {found['customers']:,} customers, ARI kept vs fresh {found['ari']:.3f}")
    for side in ("earlier_rules", "fresh_rules"):
        print(f"{side.replace('_', ' ')}:")
        for segment, rule in found[side]:
            print(f"  {segment}: {rule}")
    kept = found["kept"]
    print(f"kept: validity {kept.validity} against {kept.fresh_validity} fresh ({kept.fresh_segments} segments)")
    print(f"advice: {kept.advice}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--earlier", default="2011-11-10")
    parser.add_argument("--later", default="2011-12-10")
    parser.add_argument("--simulated", type=int, nargs="*", default=None, help="Seeds of simulated shops instead.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.simulated is None:
            show(
                f"{args.data.name}, {args.earlier} then {args.later}",
                compare(args.data, args.earlier, args.later, Path(tmp)),
            )
            return
        for seed in args.simulated:
            files = simulate_to_files(Path(tmp) / f"shop{seed}.parquet", 3000, seed=seed)
            last = pd.read_parquet(files.log, columns=["InvoiceDate"]).InvoiceDate.max().date()
            later = last + datetime.timedelta(days=1)
            earlier = later - datetime.timedelta(days=30)
            show(
                f"simulated shop {seed}, {earlier} then {later}",
                compare(files.log, str(earlier), str(later), Path(tmp) / str(seed)),
            )


if __name__ == "__main__":
    main()
