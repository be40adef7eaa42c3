"""Benchmark: transactions to customer features, custseg (Ibis on DuckDB) against plain pandas.

For each size, a simulated log (`custseg simulate`) is cleaned once by custseg into a ``lines``
Parquet file. Then, each in a fresh child process so that peak memory is its own:

- features stage: lines -> one row per customer (the 15 features), custseg vs pandas;
- log to features: raw log -> read, clean, features (custseg run --until features) vs the same
  rules and definitions in pandas.

Both sides are measured in the same run; the ratio is pandas seconds / custseg seconds. pandas
is skipped above ``--pandas-max-rows`` (it needs about 0.4 GB per million log rows).

    python benchmarks/bench_features.py --sizes 1m 10m 100m
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import duckdb

from custseg.engine import EngineOptions
from custseg.pipeline import run
from custseg.settings import Settings
from custseg.simulate import simulate_to_files

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import measure  # noqa: E402

DATA = HERE / "data"
RESULTS = HERE / "results"
ROWS_PER_CUSTOMER = 86.3
"""Log rows per simulated customer with an id (guests included), measured on 113,000 customers."""
PYTHON = sys.executable


def rows_of(size: str) -> int:
    number, unit = float(size[:-1]), size[-1].lower()
    return int(number * {"k": 1e3, "m": 1e6}[unit])


def prepare(size: str, memory_limit: str) -> tuple[Path, Path, int]:
    """The simulated log of ``size`` rows and its cleaned lines (made once, then reused)."""
    DATA.mkdir(exist_ok=True)
    log = DATA / f"sim_{size}.parquet"
    lines = DATA / f"sim_{size}.lines.parquet"
    if not log.exists():
        simulate_to_files(log, max(1, round(rows_of(size) / ROWS_PER_CUSTOMER)), seed=0)
    if not lines.exists():
        out = DATA / f"work_{size}"
        run(log, out, Settings(engine=EngineOptions(memory_limit=memory_limit)), until="clean")
        with duckdb.connect(str(out / "custseg.duckdb"), read_only=True) as con:
            con.sql(f"COPY lines TO '{lines}' (FORMAT parquet, COMPRESSION zstd)")
        shutil.rmtree(out)
    rows = duckdb.sql(f"SELECT count(*) FROM '{log}'").fetchone()[0]
    return log, lines, rows


def side(command: list[str]) -> dict:
    measured = measure(command)
    seconds, customers, _ = measured.stdout.split()
    return {
        "seconds": float(seconds),
        "process_seconds": round(measured.seconds, 3),
        "peak_mb": round(measured.peak_mb),
        "customers": int(customers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1m", "10m", "100m"])
    parser.add_argument("--pandas-max-rows", type=float, default=20e6)
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB's memory limit for custseg")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    results = []
    for size in args.sizes:
        log, lines, rows = prepare(size, args.memory_limit)
        line_rows = duckdb.sql(f"SELECT count(*) FROM '{lines}'").fetchone()[0]
        entry = {"size": size, "log_rows": rows, "line_rows": line_rows}
        entry["features_custseg"] = side(
            [PYTHON, str(HERE / "custseg_features.py"), "lines", str(lines), args.memory_limit]
        )
        work = DATA / f"bench_{size}"
        entry["log_to_features_custseg"] = side(
            [PYTHON, str(HERE / "custseg_features.py"), "log", str(log), str(work), args.memory_limit]
        )
        shutil.rmtree(work, ignore_errors=True)
        if rows <= args.pandas_max_rows:
            entry["features_pandas"] = side([PYTHON, str(HERE / "pandas_baseline.py"), "lines_features", str(lines)])
            entry["log_to_features_pandas"] = side([PYTHON, str(HERE / "pandas_baseline.py"), "features", str(log)])
            for stage in ("features", "log_to_features"):
                entry[f"{stage}_ratio"] = round(
                    entry[f"{stage}_pandas"]["seconds"] / entry[f"{stage}_custseg"]["seconds"], 2
                )
                assert entry[f"{stage}_pandas"]["customers"] == entry[f"{stage}_custseg"]["customers"]
        results.append(entry)
        print(json.dumps(entry), flush=True)
    previous = RESULTS / "features.json"
    if previous.exists():
        # Sizes not measured in this run keep their last figures (the 100M run takes 15 minutes).
        measured = {entry["size"] for entry in results}
        kept = [e for e in json.loads(previous.read_text())["results"] if e["size"] not in measured]
        results = sorted(kept + results, key=lambda e: e["log_rows"])
    report = {
        "benchmark": "transactions to customer features",
        "command": "python benchmarks/bench_features.py --sizes 1m 10m 100m (sizes may be run separately)",
        "machine": {"cores": __import__("os").cpu_count(), "python": platform.python_version()},
        "memory_limit": args.memory_limit,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "results": results,
    }
    (RESULTS / "features.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "features.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    def cell(entry: dict, key: str) -> str:
        if key not in entry:
            return "not run"
        return f"{entry[key]['seconds']:.2f} s / {entry[key]['peak_mb']:,} MB"

    lines = [
        f"# {report['benchmark']}",
        "",
        f"`{report['command']}` on {report['machine']['cores']} cores, {report['measured_at']}; "
        f"custseg with DuckDB memory limit {report['memory_limit']}. Seconds are the stage's own; MB is the "
        "peak resident memory of its process. Ratio = pandas seconds / custseg seconds.",
        "",
        "| log rows | lines | features: custseg | features: pandas | ratio | log to features: custseg "
        "| log to features: pandas | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in report["results"]:
        lines.append(
            f"| {e['log_rows']:,} | {e['line_rows']:,} | {cell(e, 'features_custseg')} | {cell(e, 'features_pandas')} "
            f"| {e.get('features_ratio', '-')} | {cell(e, 'log_to_features_custseg')} "
            f"| {cell(e, 'log_to_features_pandas')} | {e.get('log_to_features_ratio', '-')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
