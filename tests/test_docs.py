"""The documentation site: MkDocs in strict mode (a broken link or reference fails), offline."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import PROJECT


def test_the_site_builds_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert built.returncode == 0, built.stderr[-3000:]
    # The Python API reference comes from the docstrings.
    reference = (site / "python-api" / "index.html").read_text(encoding="utf-8")
    for name in ("custseg.runs.Run", "custseg.runs.Stages", "custseg.runs.Model", "custseg.pipeline.compare"):
        assert name in reference, name
    # The HTTP API page links the OpenAPI schema, generated from the code.
    schema = json.loads((site / "openapi.json").read_text(encoding="utf-8"))
    assert {"/v1/assign", "/v1/segments", "/healthz"} <= set(schema["paths"])
    assert 'href="../openapi.json"' in (site / "http-api" / "index.html").read_text(encoding="utf-8")
    # The run record's JSON Schema is published from the code too, and its page links it.
    from custseg.record import json_schema

    assert json.loads((site / "run-record.schema.json").read_text(encoding="utf-8")) == json_schema()
    assert 'href="../run-record.schema.json"' in (site / "run-record" / "index.html").read_text(encoding="utf-8")


def _table_rows(page: str) -> dict[str, str]:
    """Return the rows of a Markdown page's tables: the first cell's code names -> the row."""
    rows = {}
    for line in page.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            for name in re.findall(r"`([^`]+)`", first):
                rows[name] = line
    return rows


def _named(text: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", text))


def test_what_a_run_writes_is_described_with_the_columns_it_has(trained):
    import pandas as pd

    out = trained[1].out_dir
    rows = _table_rows((PROJECT / "docs" / "index.md").read_text(encoding="utf-8"))
    for name in ("segments.csv", "categories.csv", "interest_groups.csv"):
        columns = pd.read_csv(out / name, nrows=0).columns
        missing = [c for c in columns if c not in _named(rows[name])]
        assert not missing, f"docs/index.md's row of {name} does not name its column(s) {missing}"
    # customers.parquet: its row, and the features in Definitions (one share_cNN per category).
    features = (PROJECT / "docs" / "definitions.md").read_text(encoding="utf-8").split("## Customer features")[1]
    named = _named(rows["customers.parquet"]) | _named(features.split("\n## ")[0])
    columns = pd.read_parquet(out / "customers.parquet").columns
    missing = [c for c in columns if c not in named and not (re.fullmatch(r"share_c\d+", c) and "share_c01" in named)]
    assert not missing, f"docs/index.md and docs/definitions.md do not name customers.parquet's column(s) {missing}"
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    missing = [key for key in record if key not in _named(rows["run.json"])]
    assert not missing, f"docs/index.md's row of run.json does not name its key(s) {missing}"


def test_the_outputs_a_run_replaces_are_listed_in_the_guarantees():
    from custseg.workspace import RUN_OUTPUTS

    page = (PROJECT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    listed = re.search(r"`custseg\.workspace\.RUN_OUTPUTS`: ([^)]*)\)", page).group(1)
    assert {name.strip().rstrip("/") for name in listed.split(",")} == set(RUN_OUTPUTS)


def test_the_cli_reference_lists_every_column_assign_writes():
    from custseg.model import assigned_columns

    reference = (PROJECT / "docs" / "cli.md").read_text(encoding="utf-8").split("## `custseg assign")[1]
    out_row = next(line for line in reference.splitlines() if line.startswith("| `--out`"))
    written = set(re.findall(r"\b[a-z][a-z0-9_]+\b", out_row))
    missing = [c for c in (*assigned_columns(90), "as_of", "model_id") if c not in written]
    assert not missing, f"docs/cli.md's custseg assign --out does not list the column(s) {missing}"
