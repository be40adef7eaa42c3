"""Benchmark: which candidate families earn their fits? Every model in every space, scored by the backtest.

custseg searches k-means on the features and tiers of the predicted next-H behaviour by default;
Gaussian mixtures, Ward, HDBSCAN and a t-SNE space are available. This runs the segments stage with
every model in every space on the UCI file at several reference dates and on simulated shops of
several seeds, and reports each family's best eligible backtest validity and the time of the
segments stage with every family against the default search.

    python benchmarks/bench_families.py [--as-of 2011-07-01 ... 2011-12-10] [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from custseg.candidates import MODELS
from custseg.pipeline import run
from custseg.settings import load_settings
from custseg.simulate import simulate_to_files
from custseg.spaces import SPACES

HERE = Path(__file__).resolve().parent
UCI = HERE.parent.parent / "shared" / "data" / "online_retail.parquet"
RESULTS = HERE / "results"


def search(data: Path, out: Path, as_of: datetime.date | None, every: bool) -> tuple[pd.DataFrame, float]:
    settings = load_settings(None, as_of=as_of)
    if every:
        cluster = dataclasses.replace(settings.cluster, models=list(MODELS), spaces=list(SPACES), map_customers=0)
    else:
        cluster = dataclasses.replace(settings.cluster, map_customers=0)
    result = run(data, out, dataclasses.replace(settings, cluster=cluster), until="segments")
    return pd.DataFrame(result.record.segments.candidates), result.record.timings_s["segments"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--as-of", nargs="+", default=["2011-07-01", "2011-08-01", "2011-09-10", "2011-10-01", "2011-12-10"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        shops = [(f"UCI as of {day}", UCI, datetime.date.fromisoformat(day)) for day in args.as_of]
        for seed in args.seeds:
            shops.append(
                (f"simulated seed {seed}", simulate_to_files(folder / f"sim{seed}.parquet", 3000, seed).log, None)
            )
        for name, data, as_of in shops:
            table, every_seconds = search(data, folder / "every", as_of, every=True)
            _, default_seconds = search(data, folder / "default", as_of, every=False)
            eligible = table[table.eligible]
            best = eligible.groupby(["model", "space"]).validity.max().sort_values(ascending=False)
            chosen = table[table.chosen].iloc[0]
            rows.append(
                {
                    "shop": name,
                    "best_family": " on ".join(best.index[0]),
                    "chosen": f"{chosen.model} on {chosen.space}, {chosen.n_segments}",
                    "best_validity_by_family": {" on ".join(k): round(v, 4) for k, v in best.items()},
                    "every_family_segments_s": every_seconds,
                    "default_segments_s": default_seconds,
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    families = sorted({f for r in rows for f in r["best_validity_by_family"]})
    report = {
        "benchmark": "best eligible backtest validity of every candidate family",
        "command": "python benchmarks/bench_families.py",
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "families.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# {report['benchmark']}",
        "",
        f"`{report['command']}`, {report['measured_at']}. Blank: no eligible candidate of that family.",
        "",
        "| shop | " + " | ".join(families) + " | chosen (every family) | segments s: every / default |",
        "|---|" + "---|" * (len(families) + 2),
        *[
            f"| {r['shop']} | "
            + " | ".join(
                f"{r['best_validity_by_family'][f]:.3f}" if f in r["best_validity_by_family"] else "" for f in families
            )
            + f" | {r['chosen']} | {r['every_family_segments_s']:.1f} / {r['default_segments_s']:.1f} |"
            for r in rows
        ],
    ]
    (RESULTS / "families.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
