"""Benchmark: the Spark engine (local[2]) against DuckDB on the same simulated log, in the same run.

Each engine runs `custseg run --until rfm` (read, clean with return matching, products, customer
features and interests, RFM) in a fresh child process; the figure documents Spark's overhead on
one machine, where it is expected to be slower. Both must find the same customers.

    python benchmarks/bench_spark.py --sizes 10m
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_features import DATA, PYTHON, RESULTS, prepare  # noqa: E402
from measure import RUN_PRELUDE, measure  # noqa: E402

CHILD = (
    RUN_PRELUDE
    + """result = run({log!r}, {out!r}, Settings(engine=engine), until="rfm")
seconds = time.perf_counter() - start
print(json.dumps(result.record.timings_s), seconds, result.record.customers.count, peak_mb())
"""
)


def side(log: Path, out: Path, engine: dict) -> dict:
    code = CHILD.format(here=str(HERE), engine=json.dumps(engine), log=str(log), out=str(out))
    measured = measure([PYTHON, "-c", code])
    timings, seconds, customers, _ = measured.stdout.split("\n")[-2].rsplit(" ", 3)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "seconds": round(float(seconds), 2),
        "stages_s": json.loads(timings),
        "customers": int(customers),
        "peak_mb": round(measured.peak_mb),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["10m"])
    parser.add_argument("--spark-memory", default="8g", help="spark.driver.memory of the local[2] JVM")
    args = parser.parse_args()
    engines = {
        "duckdb": {"name": "duckdb", "memory_limit": "3GB"},
        "spark": {
            "name": "spark",
            "spark_master": "local[2]",
            "spark_conf": {"spark.driver.memory": args.spark_memory, "spark.sql.shuffle.partitions": "8"},
        },
    }
    results = []
    for size in args.sizes:
        log, _, rows = prepare(size, "3GB")
        entry = {"size": size, "log_rows": rows}
        for name, engine in engines.items():
            entry[name] = side(log, DATA / f"spark_bench_{name}", engine)
        assert entry["spark"]["customers"] == entry["duckdb"]["customers"]
        entry["ratio"] = round(entry["spark"]["seconds"] / entry["duckdb"]["seconds"], 2)
        results.append(entry)
        print(json.dumps(entry), flush=True)
    report = {
        "benchmark": "custseg run --until rfm: Spark local[2] against DuckDB",
        "command": "python benchmarks/bench_spark.py --sizes " + " ".join(args.sizes),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "engines": engines,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "spark.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "spark.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        f"# {report['benchmark']}",
        "",
        f"`{report['command']}` on {report['machine']['cores']} cores, {report['measured_at']}. Read, clean "
        "(with return matching), products, features and interests, RFM; each engine in a fresh process. "
        "Ratio = Spark seconds / DuckDB seconds. MB is the peak resident memory of the Python process "
        "(Spark's JVM is a child process and is not included).",
        "",
        "| log rows | customers | DuckDB | Spark local[2] | ratio | Spark by stage (s) |",
        "|---|---|---|---|---|---|",
    ]
    for e in report["results"]:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in e["spark"]["stages_s"].items())
        lines.append(
            f"| {e['log_rows']:,} | {e['duckdb']['customers']:,} | {e['duckdb']['seconds']:.1f} s / "
            f"{e['duckdb']['peak_mb']:,} MB | {e['spark']['seconds']:.1f} s / {e['spark']['peak_mb']:,} MB "
            f"| {e['ratio']} | {stages} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
