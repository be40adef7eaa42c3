"""Benchmark: a full run with more customers than the driver may hold (``[engine] max_driver_customers``).

On the simulated 10-million-row log (112,957 customers), a full `custseg run` (every stage, report
included) three ways, each in a fresh child process: DuckDB holding every customer on the driver
(the default limit of 1,000,000), DuckDB with ``max_driver_customers = 20,000`` and Spark
``local[2]`` with the same limit. With the limit, the segmentation and the early models learn from
samples fetched from the engine and the engine assigns every customer in batches. All three learn
the segmentation from the same 20,000 customers (``[cluster] max_fit_customers``), so every
customer must get the same segment; the two limited runs must agree on every column.

    python benchmarks/bench_scale.py [--size 10m] [--limit 20000] [--runs driver limited spark]

Each run's line also adds up its model stages (backtest, segments, value, early) against its data
stages (read, clean, products, features).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_features import DATA, PYTHON, RESULTS, prepare  # noqa: E402
from measure import RUN_PRELUDE, measure  # noqa: E402

CHILD = (
    RUN_PRELUDE
    + """result = run({log!r}, {out!r}, Settings(engine=engine))
seconds = time.perf_counter() - start
facts = {{
    "stages_s": result.record.timings_s,
    "customers": result.record.customers.count,
    "fitted_on": result.record.segments.fitted_on_customers,
    "profiled_on": result.record.segments.profiled_on_customers,
    "early_learned_from": result.record.early.learned_from_customers,
}}
print(json.dumps(facts), seconds, peak_mb())
"""
)


RUNS = ("driver", "limited", "spark")
DATA_STAGES = ("read", "clean", "products", "features")
MODEL_STAGES = ("backtest", "segments", "value", "early")


def side(log: Path, out: Path, engine: dict) -> tuple[dict, pd.DataFrame]:
    code = CHILD.format(here=str(HERE), engine=json.dumps(engine), log=str(log), out=str(out))
    measured = measure([PYTHON, "-c", code])
    facts, seconds, _ = measured.stdout.split("\n")[-2].rsplit(" ", 2)
    customers = pd.read_parquet(out / "customers.parquet").sort_values("customer_id", ignore_index=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": round(float(seconds), 1), "peak_mb": round(measured.peak_mb), **json.loads(facts)}, customers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="10m")
    parser.add_argument("--limit", type=int, default=20_000, help="max_driver_customers of the limited runs")
    parser.add_argument("--spark-memory", default="8g", help="spark.driver.memory of the local[2] JVM")
    parser.add_argument(
        "--runs", nargs="+", choices=RUNS, default=list(RUNS), help="which runs (the checks need all three)"
    )
    args = parser.parse_args()
    log, _, rows = prepare(args.size, "3GB")
    spark_conf = {"spark.driver.memory": args.spark_memory, "spark.sql.shuffle.partitions": "8"}
    runs = {
        "duckdb, all on the driver": {"name": "duckdb", "memory_limit": "3GB"},
        f"duckdb, limit {args.limit:,}": {"name": "duckdb", "memory_limit": "3GB", "max_driver_customers": args.limit},
        f"spark local[2], limit {args.limit:,}": {
            "name": "spark",
            "spark_master": "local[2]",
            "spark_conf": spark_conf,
            "max_driver_customers": args.limit,
        },
    }
    runs = {name: engine for (name, engine), short in zip(runs.items(), RUNS, strict=True) if short in args.runs}
    results, tables = {}, {}
    for number, (name, engine) in enumerate(runs.items()):
        results[name], tables[name] = side(log, DATA / f"scale_bench_{number}", engine)
        print(name, json.dumps(results[name]), flush=True)
    checks = {}
    if len(tables) == len(RUNS):
        driver, limited, spark = tables.values()
        checks = {
            "same_segment_every_customer": bool(
                driver.segment.equals(limited.segment) and limited.segment.equals(spark.segment)
            ),
            "limited_duckdb_and_spark_agree_on_every_column": bool(
                spark[list(limited.columns)]
                .astype(object)
                .where(spark.notna(), None)
                .equals(limited.astype(object).where(limited.notna(), None))
            ),
        }
    chosen = " ".join(args.runs)
    report = {
        "benchmark": "full custseg run with a driver limit: learn from samples, the engine assigns in batches",
        "command": f"python benchmarks/bench_scale.py --size {args.size} --limit {args.limit} --runs {chosen}",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "log_rows": rows,
        "runs": runs,
        "results": results,
        "checks": checks,
    }
    RESULTS.mkdir(exist_ok=True)
    # Some of the runs go to a file of their own, beside the full comparison.
    stem = "scale" if len(runs) == len(RUNS) else "scale_" + "_".join(args.runs)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        f"# {report['benchmark']}",
        "",
        f"`{report['command']}` on {report['machine']['cores']} cores, {report['measured_at']}: "
        f"{report['log_rows']:,} log rows. Each run in a fresh process; MB is the peak resident memory of the "
        "Python process (Spark's JVM is a child process and is not included).",
        "",
        "| run | customers | fitted on | profiled on | early models from | seconds | peak MB | model / data stages (s) "
        "| by stage (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["results"].items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages_s"].items())
        model = sum(r["stages_s"].get(k, 0.0) for k in MODEL_STAGES)
        data = sum(r["stages_s"].get(k, 0.0) for k in DATA_STAGES)
        lines.append(
            f"| {name} | {r['customers']:,} | {r['fitted_on']:,} | {r['profiled_on']:,} | "
            f"{r['early_learned_from']:,} | {r['seconds']} | {r['peak_mb']:,} | {model:.1f} / {data:.1f} | {stages} |"
        )
    if report["checks"]:
        lines += ["", "Checks: " + ", ".join(f"{k} = {v}" for k, v in report["checks"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
