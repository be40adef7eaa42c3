"""Benchmark: a full ``custseg run`` on the real UCI data, stage by stage, against two course baselines.

Two baselines are timed in the same run: the published course notebook (its cleaning with the
row-by-row cancellation loop, then R, F, M), and the whole course pipeline as a careful analyst
writes it today in vectorised pandas and scikit-learn (cancellations matched, R / F / M, PCA +
k-means over k, t-SNE + k-means over k, a random forest). Both do less than custseg (no audit
trail, product categories, interests, RFM map, backtest, profiles, early models or report). The
vectorised pipeline runs after each custseg run, and the ratio is the median of each repeat's: a
shared machine's speed drifts by a third over minutes.

    python benchmarks/bench_run.py [--repeats 3] [--against OTHER/src]

``--against`` also times the same run with another checkout of custseg (its ``src`` folder, say a
worktree of the commit before a change), the two alternating repeat by repeat, and prints the ratio
of their medians: a change that must not slow the run is checked in one run, on one machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import measure  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data" / "online_retail.parquet"
RESULTS = HERE / "results"
CHILD = """
import json, sys, time
from pathlib import Path
from custseg.pipeline import run
from measure import peak_mb
start = time.perf_counter()
run(sys.argv[1], sys.argv[2])
seconds = time.perf_counter() - start
# run.json's timings, read as a file: the same key in every layout of the record.
stages = json.loads((Path(sys.argv[2]) / "run.json").read_text())["timings_s"]
print(json.dumps({"seconds": seconds, "stages": stages}))
print(f"{peak_mb():.0f}")
"""


def timed_run(folder: str, source: Path | None) -> dict:
    """One full run in a fresh process: its seconds, each stage's and its peak memory."""
    prefix = f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
    if source is not None:
        prefix += f"sys.path.insert(0, {str(source)!r})\n"
    measured = measure([sys.executable, "-c", prefix + CHILD, str(DATA), folder])
    return {**json.loads(measured.stdout.splitlines()[0]), "peak_mb": measured.peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout's src folder, timed in the same run")
    args = parser.parse_args()
    runs, baseline, course = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            runs.append(timed_run(f"{folder}/run{repeat}", None))
            if args.against is not None:
                baseline.append(timed_run(f"{folder}/against{repeat}", args.against.resolve()))
            # The course pipeline right after each run: a shared machine's speed drifts over minutes,
            # so each repeat's ratio compares runs made on the same machine state.
            course.append(measure([sys.executable, str(HERE / "pandas_baseline.py"), "course_vectorised", str(DATA)]))
    stages = {name: statistics.median(r["stages"][name] for r in runs) for name in runs[0]["stages"]}
    total = statistics.median(r["seconds"] for r in runs)
    if baseline:
        against = statistics.median(r["seconds"] for r in baseline)
        print(
            f"this checkout {total:.2f} s, {args.against} {against:.2f} s (medians of {args.repeats}, alternating): "
            f"ratio this / other = {total / against:.3f}; runs: {[round(r['seconds'], 1) for r in runs]} against "
            f"{[round(r['seconds'], 1) for r in baseline]}; peak {max(r['peak_mb'] for r in runs):.0f} MB against "
            f"{max(r['peak_mb'] for r in baseline):.0f} MB"
        )
        for name in runs[0]["stages"]:
            other = [r["stages"][name] for r in baseline if name in r["stages"]]
            if other:
                print(f"  {name}: {stages[name]:.2f} s against {statistics.median(other):.2f} s")
    notebook = measure([sys.executable, str(HERE / "pandas_baseline.py"), "course_notebook", str(DATA)])
    notebook_seconds = float(notebook.stdout.split()[0])
    course_seconds = [float(measured.stdout.split()[0]) for measured in course]
    vectorised_seconds = statistics.median(course_seconds)
    ratio = statistics.median(r["seconds"] / c for r, c in zip(runs, course_seconds, strict=True))
    report = {
        "benchmark": "full custseg run on online_retail.parquet (541,909 rows)",
        "command": f"python benchmarks/bench_run.py --repeats {args.repeats}",
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "custseg_seconds_median": round(total, 2),
        "custseg_peak_mb": round(max(r["peak_mb"] for r in runs)),
        "stages_seconds_median": {k: round(v, 3) for k, v in stages.items()},
        "course_notebook_seconds": round(notebook_seconds, 2),
        "course_notebook_peak_mb": round(notebook.peak_mb),
        "ratio_notebook_over_custseg": round(notebook_seconds / total, 2),
        "course_vectorised_seconds": round(vectorised_seconds, 2),
        "course_vectorised_peak_mb": round(max(measured.peak_mb for measured in course)),
        "ratio_vectorised_over_custseg": round(vectorised_seconds / total, 2),
        "ratio_custseg_over_vectorised": round(ratio, 3),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "run.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# {report['benchmark']}",
        "",
        f"`{report['command']}`, {report['measured_at']}. Median of {args.repeats} runs, each in a fresh process.",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {name} | {seconds:.2f} |" for name, seconds in report["stages_seconds_median"].items()],
        f"| **whole run (process)** | **{total:.2f}** (peak {report['custseg_peak_mb']:,} MB) |",
        "",
        f"Course notebook (pandas, cleaning with its row loop + R, F, M only): {notebook_seconds:.2f} s, "
        f"peak {report['course_notebook_peak_mb']:,} MB; ratio notebook / custseg = "
        f"{report['ratio_notebook_over_custseg']}.",
        "",
        f"Course pipeline, vectorised (pandas + scikit-learn: cleaning with cancellations matched, R, F, M, "
        f"PCA + k-means over k, t-SNE + k-means over k, a random forest), run after each custseg run: "
        f"{vectorised_seconds:.2f} s (median; runs {[round(c, 1) for c in course_seconds]}), peak "
        f"{report['course_vectorised_peak_mb']:,} MB; ratio vectorised / custseg = "
        f"{report['ratio_vectorised_over_custseg']}. **custseg / vectorised, the median of each repeat's ratio: "
        f"{ratio:.3f}** (runs {[round(r['seconds'] / c, 3) for r, c in zip(runs, course_seconds, strict=True)]}).",
    ]
    (RESULTS / "run.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
