"""Benchmark: the backtest and segments stages as the number of customers grows.

On simulated shops of 4,300 (the UCI file's size), 5,000, 25,000 and 100,000 customers, a run up
to the segments stage in a fresh child process; the time of the backtest stage (the customer table
as of T - H and the RFM map's scores) and of the segments stage (the candidate search on a sample
of at most ``[cluster] search_customers`` backtest customers, the final fit on at most
``max_fit_customers``, the assignment of every customer, the profiles), with ratios to the
4,300-customer shop measured in the same run. The target: 25,000 customers in at most twice the
time of 4,300.

    python benchmarks/bench_segments.py [--sizes 4300 5000 25000 100000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import measure  # noqa: E402

DATA = HERE / "data"
RESULTS = HERE / "results"
CHILD = """
import json, sys, time
sys.path.insert(0, {here!r})
from custseg.pipeline import run
from measure import peak_mb
result = run({log!r}, {out!r}, until="segments")
segments, backtest = result.record.segments, result.record.backtest
print(json.dumps({{
    "stages_s": result.record.timings_s,
    "customers": result.record.customers.count,
    "backtest_customers": getattr(backtest, "customers", None),
    "searched_on": segments.searched_on_customers,
    "fitted_on": segments.fitted_on_customers,
    "chosen": "{{model}} on {{space}}, {{n_segments}}".format(**segments.chosen),
}}))
print(f"{{peak_mb():.0f}}")
"""


def simulated(customers: int) -> Path:
    """The simulated log of ``customers`` customers, written once into benchmarks/data/."""
    from custseg.simulate import simulate_to_files

    log = DATA / f"segments_{customers}.parquet"
    if not log.exists():
        simulate_to_files(log, customers, seed=11)
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[4300, 5000, 25000, 100000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            out = Path(folder) / str(size)
            code = CHILD.format(here=str(HERE), log=str(simulated(size)), out=str(out))
            measured = measure([sys.executable, "-c", code])
            facts = json.loads(measured.stdout.splitlines()[0])
            shutil.rmtree(out, ignore_errors=True)
            rows.append(
                {
                    "simulated_customers": size,
                    **facts,
                    "backtest_s": facts["stages_s"]["backtest"],
                    "segments_s": facts["stages_s"]["segments"],
                    "peak_mb": round(measured.peak_mb),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    base = rows[0]
    for row in rows:
        row["segments_ratio_to_first"] = round(row["segments_s"] / base["segments_s"], 2)
    report = {
        "benchmark": "backtest and segments stages by number of customers (simulated shops)",
        "command": "python benchmarks/bench_segments.py --sizes " + " ".join(map(str, args.sizes)),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "segments.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# {report['benchmark']}",
        "",
        f"`{report['command']}`, {report['measured_at']}. Each size in a fresh process.",
        "",
        "| customers | backtest customers | searched on | fitted on | chosen | backtest s | segments s "
        "| segments / first |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['customers']:,} | {r['backtest_customers']:,} | {r['searched_on']:,} | {r['fitted_on']:,} | "
            f"{r['chosen']} | {r['backtest_s']:.2f} | {r['segments_s']:.2f} | {r['segments_ratio_to_first']} |"
            for r in rows
        ],
    ]
    (RESULTS / "segments.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
