"""Benchmark: do the segments predict the months after a cut they never saw?

For each cut date, ``custseg run DATA --as-of CUT`` segments the customers on the log before the
cut (its own backtest inside looks only at data before the cut too). Then the months after the
cut, which the run never used, judge its segments: each customer is scored by their segment's
share of customers who ordered again within H days of the cut (return AUC) and by their segment's
mean log1p(revenue within H) (eta squared). The learned segments, the RFM map of the same run,
and, as ceilings, continuous scores on log R, F, M and tenure cross-validated on those months
(logistic regression for return, linear regression for log revenue) are scored alike.

    python benchmarks/temporal_split.py [--data FILE] [--cuts 2011-07-01 2011-08-01 2011-09-10 2011-10-01]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import ibis

from custseg.backtest import Outcomes, ceilings, fold_ids, in_sample_scores, join_outcomes, window_outcomes
from custseg.pipeline import run
from custseg.settings import load_settings
from custseg.spaces import FeatureSpace

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "online_retail.parquet"
RESULTS = HERE / "results"


def score_cut(data: Path, cut: datetime.date, horizon: int, folder: Path) -> dict:
    """Run custseg as of ``cut`` and score its segments on the ``horizon`` days after it."""
    settings = load_settings(None, as_of=cut)
    start = time.perf_counter()
    result = run(data, folder, settings)
    seconds = time.perf_counter() - start
    backend = ibis.duckdb.connect(folder / "custseg.duckdb", read_only=True)
    try:
        as_of = datetime.datetime.combine(cut, datetime.time())
        after = window_outcomes(backend.table("lines"), as_of, as_of + datetime.timedelta(days=horizon)).execute()
        customers = backend.table("customers").order_by("customer_id").execute()
    finally:
        backend.disconnect()
    joined = join_outcomes(customers, after)
    outcomes = Outcomes.of(joined)
    space = FeatureSpace(features=["recency_days", "frequency", "monetary", "tenure_days"]).fit(joined)
    chosen = result.record.segments.chosen
    return {
        "cut": str(cut),
        "customers": len(joined),
        "returned_share": round(float(outcomes.returned.mean()), 4),
        "chosen": f"{chosen['model']} on {chosen['space']}, {chosen['n_segments']} segments",
        "learned": in_sample_scores(joined.segment, outcomes),
        "rfm": in_sample_scores(joined.rfm_segment, outcomes),
        "rfm_segments": int(joined.rfm_segment.nunique()),
        "ceilings": ceilings(space.transform(joined), outcomes, fold_ids(len(joined), 5, 0)),
        "run_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cuts", nargs="+", default=["2011-07-01", "2011-08-01", "2011-09-10", "2011-10-01"])
    parser.add_argument("--horizon", type=int, default=90)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for cut in args.cuts:
            rows.append(score_cut(args.data, datetime.date.fromisoformat(cut), args.horizon, Path(folder) / cut))
            print(json.dumps(rows[-1]), file=sys.stderr)
    report = {
        "benchmark": f"segments scored on the {args.horizon} days after a cut the run never saw",
        "data": str(args.data.name),
        "command": "python benchmarks/temporal_split.py --cuts " + " ".join(args.cuts),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "cuts": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = "temporal_split" if args.data == DATA else f"temporal_split_{args.data.stem}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# {report['benchmark']} ({report['data']})",
        "",
        f"`python benchmarks/temporal_split.py --cuts {' '.join(args.cuts)}`, {report['measured_at']}.",
        "",
        "| cut | customers | chosen | learned AUC | learned eta² | RFM map AUC | RFM map eta² "
        "| logistic AUC | linear R² |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['cut']} | {r['customers']:,} | {r['chosen']} | {r['learned']['auc']:.4f} | "
            f"{r['learned']['eta_squared']:.4f} | {r['rfm']['auc']:.4f} | {r['rfm']['eta_squared']:.4f} | "
            f"{r['ceilings']['logistic_regression_auc']:.4f} | {r['ceilings']['linear_regression_r_squared']:.4f} |"
            for r in rows
        ],
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
