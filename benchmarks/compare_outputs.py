"""Check that two output folders of ``custseg run`` hold the same results, table for table.

For a change that must not change any answer (a refactoring): run the same input and settings
before and after it, then compare the folders. Compared: every table in ``custseg.duckdb`` (or
``tables/`` of a Spark run) value for value, in a fixed row order; the files a user reads byte for
byte; run.json and model/model.json field for field. Not compared: run.json's timings, package
versions and report path (it names the output folder), and the SHA-256 of the ``.skops`` files
(skops stores memory addresses); their models' answers are in ``customers.parquet``. A run.json
of the untyped layout (record version 1, custseg 0.1) is first renamed into today's
(`renamed_v1`), so that a refactoring which renamed keys can still be checked value for value.

    python benchmarks/compare_outputs.py BEFORE_DIR AFTER_DIR

Prints each difference and exits 1 if there is one, else prints what was compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb
import pandas as pd

FILES = ("customers.parquet", "rejected.parquet", "segments.csv", "categories.csv", "report.html")
UNCOMPARED_RUN_FIELDS = ("timings_s", "versions", "report")


def tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Every stored table of a run, rows in the order of all their columns."""
    if (folder / "custseg.duckdb").exists():
        with duckdb.connect(str(folder / "custseg.duckdb"), read_only=True) as con:
            names = [row[0] for row in con.sql("show tables").fetchall()]
            return {name: con.sql(f'select * from "{name}" order by all').df() for name in names}
    found = {}
    for path in sorted((folder / "tables").iterdir()):
        frame = pd.read_parquet(path)
        found[path.name] = frame.sort_values(list(frame.columns), ignore_index=True)
    return found


def json_differences(before: object, after: object, where: str) -> list[str]:
    """Where two JSON values differ, as paths like ``run.json: segments.candidates[3].k``."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = [f"{where}.{key}: only in {'before' if key in before else 'after'}" for key in before.keys() ^ after]
        for key in sorted(before.keys() & after.keys()):
            found += json_differences(before[key], after[key], f"{where}.{key}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for d in json_differences(b, a, f"{where}[{i}]")
        ]
    return [] if before == after else [f"{where}: {json.dumps(before)[:200]} != {json.dumps(after)[:200]}"]


def renamed_v1(run: dict) -> dict:
    """Rename a run.json of record version 1 into version 2's keys; its values stay as they were.

    validation -> backtest (its ``segments`` -> segments.backtest, and no figures when skipped),
    migration -> movement, lines -> span, the stage and settings predict -> early (and the settings'
    validation -> backtest), course null when it did not run, an early result's fields
    under ``fit`` (``skipped`` as ``{"skipped": reason}``), and timestamps as ISO text with a T.
    """
    if "record_version" in run:
        return run
    run = {"record_version": 2, "course": None, **run}
    renames = {"validation": "backtest", "migration": "movement", "lines": "span", "predict": "early"}
    run = {renames.get(key, key): value for key, value in run.items()}
    run["settings"] = {renames.get(key, key): value for key, value in run["settings"].items()}
    backtest = run.get("backtest")
    if isinstance(backtest, dict):
        figures = backtest.pop("segments", None)
        if "skipped" in backtest:
            run["backtest"] = {"skipped": backtest["skipped"]}
        if isinstance(run.get("segments"), dict) and "skipped" not in run["segments"]:
            run["segments"]["backtest"] = figures
    movement = run.get("movement")
    if isinstance(movement, dict) and "skipped" not in movement:
        movement.setdefault("learned", None)
    early = run.get("early")
    if isinstance(early, dict) and "results" in early:
        kept = ("target", "n_orders", "train_customers", "test_customers")
        for number, row in enumerate(early["results"]):
            fit = {k: v for k, v in row.items() if k not in kept}
            early["results"][number] = {
                **{k: row[k] for k in kept},
                "fit": {"skipped": fit["skipped"]} if "skipped" in fit else {"degenerate": None, **fit},
            }
    if "predict" in run.get("timings_s", {}):
        run["timings_s"]["early"] = run["timings_s"].pop("predict")
    return _iso_timestamps(run)


def _iso_timestamps(value: object) -> object:
    if isinstance(value, dict):
        return {key: _iso_timestamps(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_iso_timestamps(item) for item in value]
    if isinstance(value, str) and len(value) == 19 and value[4] == "-" and value[10] == " " and value[13] == ":":
        return value[:10] + "T" + value[11:]
    return value


def differences(before: Path, after: Path) -> tuple[list[str], list[str]]:
    """The differences between two output folders, and the names of what was compared."""
    found, compared = [], []
    before_tables, after_tables = tables(before), tables(after)
    for name in sorted(before_tables.keys() ^ after_tables.keys()):
        found.append(f"table {name}: only in {'before' if name in before_tables else 'after'}")
    for name in sorted(before_tables.keys() & after_tables.keys()):
        compared.append(f"table {name} ({len(before_tables[name]):,} rows)")
        try:
            pd.testing.assert_frame_equal(before_tables[name], after_tables[name])
        except AssertionError as error:
            found.append(f"table {name}: {' '.join(str(error).split())[:300]}")
    for name in FILES:
        if (before / name).exists() or (after / name).exists():
            compared.append(name)
            if not ((before / name).exists() and (after / name).exists()):
                found.append(f"{name}: only in {'before' if (before / name).exists() else 'after'}")
            elif (before / name).read_bytes() != (after / name).read_bytes():
                found.append(f"{name}: the bytes differ")
    runs = [renamed_v1(json.loads((folder / "run.json").read_text())) for folder in (before, after)]
    for run in runs:
        for field in UNCOMPARED_RUN_FIELDS:
            run.pop(field, None)
    found += json_differences(*runs, "run.json")
    compared.append("run.json")
    models = [folder / "model" / "model.json" for folder in (before, after)]
    if any(path.exists() for path in models):
        manifests = [json.loads(path.read_text()) if path.exists() else {} for path in models]
        files = [set(manifest.pop("files", {})) for manifest in manifests]
        if files[0] != files[1]:
            found.append(f"model/model.json files: {sorted(files[0])} != {sorted(files[1])}")
        found += json_differences(*manifests, "model.json")
        compared.append("model/model.json")
    return found, compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    found, compared = differences(args.before, args.after)
    if found:
        print("\n".join(found))
        sys.exit(1)
    print(f"identical: {', '.join(compared)}")


if __name__ == "__main__":
    main()
