"""The ``custseg`` command: each subcommand is one library call plus presentation.

Errors raised by the library for bad input (`CustsegError`) are printed as one line on stderr
with exit code 1; nothing else is caught, so a bug still shows its traceback.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from custseg import __version__
from custseg.errors import CustsegError, RenamedSettingWarning

if TYPE_CHECKING:
    from custseg.pipeline import RunResult

# Each command imports the library when it runs: `custseg --help` need not load scikit-learn,
# Ibis and Plotly (seconds on a laptop).

app = typer.Typer(
    help="Turn a shop's transaction log into customer segments a marketing team can act on.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_CONFIG = Path("custseg.toml")


def _interactive() -> bool:
    return sys.stdout.isatty()


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except CustsegError as exc:
        typer.echo(f"custseg: error: {exc}", err=True)
        raise typer.Exit(1) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"custseg {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Turn a shop's transaction log into customer segments a marketing team can act on."""
    warnings.showwarning = _one_line_warning


_python_warning = warnings.showwarning


def _one_line_warning(message, category, *args, **kwargs) -> None:
    """Print custseg's own warnings (a setting under an earlier name) as one line, like its errors."""
    if issubclass(category, RenamedSettingWarning):
        typer.echo(f"custseg: warning: {message}", err=True)
    else:
        _python_warning(message, category, *args, **kwargs)


def _run_with_progress(data: str | Path, out: Path, settings) -> RunResult:
    from custseg.pipeline import COURSE_STAGES, STAGES, run

    stages = COURSE_STAGES if settings.recipe == "course" else STAGES
    if not _interactive():
        return run(data, out, settings)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task("starting", total=len(stages))

        def on_stage(name: str) -> None:
            progress.update(task, description=f"{name}", completed=stages.index(name))

        return run(data, out, settings, on_stage=on_stage)


def _print_course(result: RunResult) -> None:
    report = result.manifest["course"]
    if not _interactive():
        typer.echo(json.dumps({"out_dir": str(result.out_dir), **report}, indent=2, default=str))
        return
    console = Console(highlight=False)
    table = _table(
        "The course pipeline, reproduced (../shared/REFERENCE.md, analysis A)",
        tuple((column, "left") for column in ("figure", "published", "reproduced", "tolerance", "holds")),
    )
    for row in report["comparison"]:
        table.add_row(
            row["figure"],
            str(row["published"]),
            str(row["reproduced"]),
            row["tolerance"],
            "yes" if row["holds"] else "NO",
        )
    console.print(table)
    for key, title in (("pca_segment_means", "PCA + k-means"), ("tsne_segment_means", "t-SNE + k-means")):
        if key in report:
            console.print(
                title
                + " segment means (R days, F, M): "
                + "; ".join(
                    f"({m['recency']:.0f}, {m['frequency']:.1f}, {m['monetary']:,.0f}) x {m['customers']}"
                    for m in report[key]
                )
            )
    console.print(
        f"The course drops {report['counts']['customers'] - report['counts']['customers_after_trim']} customers "
        "above the 95th percentile; custseg's own run keeps and segments every customer."
    )


def _tie_note(described: dict) -> str | None:
    """One line when the timestamps were read by the tie rule (several formats fit every value)."""
    ties = described.get("timestamp_format_ties") or []
    if not ties:
        return None
    chosen = described["timestamp_format"]
    return (
        f"custseg: note: every timestamp fits both {chosen!r} and {', '.join(repr(t) for t in ties)}; read as "
        f"{chosen!r}, the first in custseg's order; if that is wrong, rerun with --date-format {ties[0]!r}"
    )


def _print_summary(result: RunResult) -> None:
    manifest = result.manifest
    note = _tie_note(manifest.get("input", {}))
    if note:
        typer.echo(note, err=True)
    if "course" in manifest:
        _print_course(result)
        return
    if not _interactive():
        summary = {
            "out_dir": str(result.out_dir),
            "report": manifest.get("report"),
            "rows": manifest["rows"],
            "reconciliation": manifest["reconciliation"],
            "lines": manifest["lines"],
            "customers": {k: v for k, v in manifest["customers"].items() if k != "fully_returned"},
            "fully_returned_customers": manifest["customers"]["fully_returned"]["count"],
            "rfm_segments": {s["segment"]: s["customers"] for s in manifest["rfm"]["segments"]},
            "categories": {c["category"]: c["label"] for c in manifest["products"]["categories"]},
            "learned_segments": {
                p["segment"]: [p["name"], p["customers"]] for p in manifest["segments"].get("profiles", [])
            },
            "segmentation": manifest["segments"].get("chosen", manifest["segments"].get("skipped")),
            "backtest": _backtest_summary(manifest.get("validation", {})),
            "value": _value_summary(manifest.get("value", {})),
            "migration": {k: v["sentences"] for k, v in _migrations(manifest)},
            "early_prediction": [
                {
                    k: row.get(k)
                    for k in ("target", "n_orders", "test_customers", "chosen", "model", "majority", "degenerate")
                    if k in row
                }
                for row in manifest.get("early", {}).get("results", [])
            ],
        }
        typer.echo(json.dumps(summary, indent=2))
        return
    console = Console(highlight=False)
    rows = manifest["rows"]
    table = Table(title="Cleaning", show_lines=False)
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_row("input", f"{rows['input_rows']:,}")
    table.add_row("kept purchase lines", f"{rows['kept_rows']:,}")
    for reason, count in rows["rejected_by_reason"].items():
        if count:
            table.add_row(f"  rejected: {reason}", f"{count:,}")
    console.print(table)
    rec = manifest["reconciliation"]
    money = Table(title="Revenue reconciliation")
    money.add_column("item")
    money.add_column("amount", justify="right")
    money.add_row("gross sales (kept lines)", f"{rec['gross_sales']:,.2f}")
    money.add_row("returns netted against them", f"-{rec['returns_matched']:,.2f}")
    money.add_row("net revenue", f"{rec['net_revenue']:,.2f}")
    for reason, amount in rec["rejected_amount"].items():
        money.add_row(f"  rejected: {reason}", f"{amount:,.2f}")
    money.add_row("balanced", "yes" if rec["balanced"] else "NO")
    console.print(money)
    lines = manifest["lines"]
    console.print(
        f"{lines['customers']:,} customers, {lines['orders']:,} orders, {lines['products']:,} products, "
        f"{lines['first_invoiced_at']} to {lines['last_invoiced_at']}"
    )
    products = manifest["products"]
    categories = _table(
        f"Product categories ({products['chosen']} chosen by {products['criterion']}; "
        f"{products['products']:,} products)",
        (("category", "left"), ("label", "left"), ("products", "right"), ("revenue", "right"), ("examples", "left")),
    )
    for category in products["categories"]:
        categories.add_row(
            category["category"],
            category["label"],
            f"{category['products']:,}",
            f"{category['revenue_share']:.1%}",
            category["examples"],
        )
    console.print(categories)
    customers = manifest["customers"]
    rfm = _table(
        f"RFM segments ({customers['count']:,} customers as of {customers['as_of'][:10]})",
        (("segment", "left"), ("customers", "right"), ("share", "right"), ("revenue", "right"), *RFM_COLUMNS),
    )
    for segment in manifest["rfm"]["segments"]:
        rfm.add_row(segment["segment"], *_size_and_medians(segment))
    console.print(rfm)
    _print_learned(console, manifest["segments"])
    _print_backtest(console, manifest.get("validation", {}))
    _print_value(console, manifest.get("value", {}))
    for kind, movement in _migrations(manifest):
        label = "Learned segments" if kind == "learned" else "RFM segments"
        console.print(f"{label}, {movement['from_date']} to {movement['to_date']}: " + " ".join(movement["sentences"]))
    _print_early(console, manifest.get("early", {}))
    if customers["fully_returned"]["count"]:
        console.print(
            f"{customers['fully_returned']['count']} customer(s) returned every order: no RFM segment "
            "(listed in run.json)"
        )
    store = "tables/" if manifest["settings"]["engine"]["name"] == "spark" else "custseg.duckdb"
    console.print(
        f"Report: [bold]{result.out_dir / 'report.html'}[/bold]; tables in {result.out_dir} ({store}, "
        "customers.parquet, segments.csv, categories.csv, rejected.parquet, model/, run.json)"
    )


def _print_learned(console: Console, segments: dict) -> None:
    if "skipped" in segments:
        console.print(f"Learned segments skipped: {segments['skipped']}")
        return
    chosen = segments["chosen"]
    scored = (
        f"backtest validity {chosen['validity']}, return AUC {chosen['auc']}, eta squared {chosen['eta_squared']}"
        if segments.get("chosen_by") == "backtest"
        else f"silhouette {chosen['silhouette']}"
    )
    learned = _table(
        f"Learned segments: {chosen['model']} on {chosen['space']}, {chosen['n_segments']} segments "
        f"({scored}; stability {chosen['stability']})",
        (
            ("id", "left"),
            ("name", "left"),
            ("customers", "right"),
            ("share", "right"),
            ("revenue", "right"),
            *RFM_COLUMNS,
            ("ordered again*", "right"),
        ),
    )
    for profile in segments["profiles"]:
        rate = profile.get("backtest_return_rate")
        learned.add_row(
            profile["segment"], profile["name"], *_size_and_medians(profile), "-" if rate is None else f"{rate:.0%}"
        )
    console.print(learned)


def _backtest_summary(validation: dict) -> dict:
    """Return the backtest's headline figures: learned segments, RFM map and continuous ceilings (or why none)."""
    if "skipped" in validation or not validation:
        return {"skipped": validation.get("skipped", "not run")}
    keys = ("auc", "eta_squared", "validity")
    return {
        "as_of": validation["as_of"],
        "horizon_days": validation["horizon_days"],
        "learned_segments": {k: validation.get("segments", {}).get(k) for k in keys},
        "rfm_map": {k: validation["rfm"][k] for k in keys},
        "ceilings": validation["ceilings"],
    }


def _migrations(manifest: dict) -> list[tuple[str, dict]]:
    """Return run.json's migrations (learned, RFM) that were counted."""
    migration = manifest.get("migration", {})
    return [(kind, migration[kind]) for kind in ("learned", "rfm") if kind in migration]


def _value_summary(value: dict) -> dict:
    """Return the value model's headline: the model chosen, its backtest and forward figures, the expected totals."""
    if "skipped" in value or not value:
        return {"skipped": value.get("skipped", "not run")}
    keys = ("spearman", "r_squared_log", "auc", "revenue_ratio")
    forward = value["forward"]
    return {
        "chosen": value["chosen"],
        "backtest": {k: value["backtest"][k] for k in keys},
        "forward": forward if "skipped" in forward else {k: forward[k] for k in keys},
        "expected": value["expected"],
    }


def _print_value(console: Console, value: dict) -> None:
    if "skipped" in value:
        console.print(f"Expected value skipped: {value['skipped']}")
        return
    if not value:
        return
    fit, expected, horizon = value["backtest"], value["expected"], value["horizon_days"]
    console.print(
        f"Expected value ({value['chosen'].replace('_', ' ')}): {expected['expected_revenue']:,.0f} of revenue and "
        f"{expected['expected_orders']:,.0f} orders in the next {horizon} days from {expected['customers']:,} "
        "customers. "
        f"On the backtest: Spearman {fit['spearman']:.3f}, R² of log revenue {fit['r_squared_log']:.3f}, predicted "
        f"total {fit['revenue_ratio']:.0%} of the actual"
        + (f"; forward check {value['forward']['revenue_ratio']:.0%}." if "revenue_ratio" in value["forward"] else ".")
    )


def _print_backtest(console: Console, validation: dict) -> None:
    if "skipped" in validation:
        console.print(f"Backtest skipped: {validation['skipped']} (learned segments chosen by silhouette)")
        return
    if "segments" not in validation:
        return
    learned, rfm, ceiling = validation["segments"], validation["rfm"], validation["ceilings"]
    console.print(
        f"* Backtest: the {validation['customers']:,} customers as of {validation['as_of'][:10]}, and what they did "
        f"in the next {validation['horizon_days']} days. Learned segments: return AUC {learned['auc']:.3f}, eta "
        f"squared of log revenue {learned['eta_squared']:.3f}; RFM map: {rfm['auc']:.3f}, {rfm['eta_squared']:.3f}; "
        f"continuous scores (ceiling): {ceiling['logistic_regression_auc']:.3f}, "
        f"{ceiling['linear_regression_r_squared']:.3f}."
    )


def _size_and_medians(segment: dict) -> tuple[str, ...]:
    """Cells of a segment row: customers, share, revenue share and median R, F, M."""
    return (
        f"{segment['customers']:,}",
        f"{segment['share']:.1%}",
        f"{segment['revenue_share']:.1%}",
        _number(segment["median_recency_days"]),
        _number(segment["median_frequency"]),
        _number(segment["median_monetary"], 2),
    )


def _print_early(console: Console, early: dict) -> None:
    if "results" not in early:
        return
    table = _table(
        f"Early prediction: target {early['horizon_days']} days after the first order, tested on the "
        f"{early['test_share']:.0%} latest-joining customers (from {str(early['test_joined_from'])[:10]})",
        (
            ("target", "left"),
            ("first orders", "right"),
            ("test customers", "right"),
            ("model", "left"),
            ("macro-F1", "right"),
            ("majority", "right"),
            ("as is", "right"),
            ("accuracy", "right"),
        ),
    )
    for row in early["results"]:
        if "skipped" in row or "degenerate" in row:
            why = row.get("skipped") or "one class in the test set: no score"
            table.add_row(row["target"], str(row["n_orders"]), f"{row['test_customers']:,}", why)
            continue
        table.add_row(
            row["target"],
            str(row["n_orders"]),
            f"{row['test_customers']:,}",
            row["chosen"],
            f"{row['model']['macro_f1']:.3f}",
            f"{row['majority']['macro_f1']:.3f}",
            f"{row['first_orders_as_is']['macro_f1']:.3f}",
            f"{row['model']['accuracy']:.1%}",
        )
    console.print(table)


RFM_COLUMNS = (("median R days", "right"), ("median F", "right"), ("median M", "right"))


def _table(title: str, columns: tuple[tuple[str, str], ...]) -> Table:
    table = Table(title=title)
    for column, justify in columns:
        table.add_column(column, justify=justify)
    return table


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


ColumnMapOption = Annotated[
    list[str] | None,
    typer.Option("--map", help="Map a canonical column to a source column: canonical=source (repeatable)."),
]
TableOption = Annotated[
    str | None, typer.Option("--table", help="With a postgresql:// input: the table of orders (schema.table allowed).")
]
QueryOption = Annotated[
    str | None, typer.Option("--query", help='With a postgresql:// input: a query, e.g. "select * from orders".')
]
EncodingOption = Annotated[str | None, typer.Option("--encoding", help="CSV text encoding (default: detected).")]
DelimiterOption = Annotated[str | None, typer.Option("--delimiter", help="CSV delimiter (default: detected).")]
DateFormatOption = Annotated[
    str | None, typer.Option("--date-format", help="strptime format of text timestamps (default: detected).")
]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="Reference date, e.g. 2011-12-10 (default: the day after the last transaction)."),
]
"""Options that `run` and `assign` share."""


@app.command("run")
def run_command(
    data: Annotated[
        str,
        typer.Argument(
            help="Transaction log: .csv, .csv.gz, .parquet or .xlsx; a database, postgresql://user@host:5432/shop "
            "(with --table or --query); with --engine spark also a Parquet URL (e.g. hdfs://..., file://...) or a "
            "Spark table name."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("custseg-out"),
    table: TableOption = None,
    query: QueryOption = None,
    column_map: ColumnMapOption = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Settings file (default: ./custseg.toml if it exists).")
    ] = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    date_format: DateFormatOption = None,
    as_of: AsOfOption = None,
    rfm_bins: Annotated[int | None, typer.Option("--rfm-bins", help="RFM score levels: 3, 4 or 5 (default 5).")] = None,
    rfm_map: Annotated[
        str | None, typer.Option("--rfm-map", help="RFM segment map: rfm, rf_grid or custom (default rfm).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of every stochastic step (default 0).")] = None,
    recipe: Annotated[
        str | None,
        typer.Option("--recipe", help="custseg (default) or course: the published course pipeline, for comparison."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Force the segmentation model: kmeans, tiers, gmm, ward or hdbscan.")
    ] = None,
    n_segments: Annotated[int | None, typer.Option("--segments", help="Force the number of learned segments.")] = None,
    category_map: Annotated[
        Path | None,
        typer.Option("--categories", help="CSV of product_id,category that overrides the learned categories."),
    ] = None,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="Most memory DuckDB may use, e.g. 3GB (default: 80% of RAM).")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="Where transaction-level stages run: duckdb (default) or spark."),
    ] = None,
    spark_master: Annotated[
        str | None,
        typer.Option(
            "--spark-master", help="Spark master: local[*] (default), spark://host:7077, yarn, or sc://host:15002."
        ),
    ] = None,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option("--spark-conf", help="A Spark setting key=value, e.g. spark.driver.memory=8g (repeatable)."),
    ] = None,
) -> None:
    """Clean a transaction log, profile every customer and write the output folder."""
    from custseg.settings import load_settings, parse_column_map, parse_spark_conf

    with _user_errors():
        if config is None and DEFAULT_CONFIG.exists():
            config = DEFAULT_CONFIG
        settings = load_settings(
            config,
            column_map=parse_column_map(column_map or []),
            encoding=encoding,
            delimiter=delimiter,
            timestamp_format=date_format,
            table=table,
            query=query,
            seed=seed,
            as_of=as_of,
            rfm_bins=rfm_bins,
            rfm_map=rfm_map,
            memory_limit=memory_limit,
            engine=engine,
            spark_master=spark_master,
            spark_conf=parse_spark_conf(spark_conf or []),
            category_map=category_map,
            model=model,
            n_segments=n_segments,
            recipe=recipe,
        )
        result = _run_with_progress(data, out, settings)
    _print_summary(result)


@app.command("assign")
def assign_command(
    data: Annotated[
        str,
        typer.Argument(
            help="Transactions of any customers: .csv, .csv.gz, .parquet or .xlsx, or a database "
            "(postgresql://..., with --table or --query)."
        ),
    ],
    model: Annotated[Path, typer.Option("--model", "-m", help="Output folder of custseg run (or its model/).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .parquet, or CSV otherwise.")] = Path(
        "assigned.parquet"
    ),
    table: TableOption = None,
    query: QueryOption = None,
    as_of: AsOfOption = None,
    column_map: ColumnMapOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    date_format: DateFormatOption = None,
) -> None:
    """Give customers their RFM and learned segments and expected value with a model written by custseg run."""
    from custseg.pipeline import assign
    from custseg.settings import InputOptions, parse_as_of, parse_column_map

    with _user_errors():
        options = InputOptions(
            column_map=parse_column_map(column_map or []),
            encoding=encoding,
            delimiter=delimiter,
            timestamp_format=date_format,
            table=table,
            query=query,
        )
        result = assign(data, model, out, input_options=options, as_of=parse_as_of(as_of))
    summary = {
        "out": str(out),
        "customers": result.manifest["customers"]["count"],
        "as_of": result.manifest["customers"]["as_of"],
        "with_learned_segment": result.manifest["segments"].get("assigned", 0),
        "with_early_prediction": result.manifest.get("early", {}).get("predicted_customers", 0),
        "products_unknown_to_the_model": result.manifest["products"]["unknown_to_the_model"],
    }
    if _interactive():
        Console(highlight=False).print(
            f"{summary['customers']:,} customers as of {summary['as_of'][:10]} -> [bold]{out}[/bold] "
            f"({summary['with_learned_segment']:,} with a learned segment, "
            f"{summary['with_early_prediction']:,} new ones with an early prediction; "
            f"{summary['products_unknown_to_the_model']:,} products the model had not seen)"
        )
    else:
        typer.echo(json.dumps(summary))


@app.command("compare")
def compare_command(
    first: Annotated[Path, typer.Argument(help="Customers as of the earlier date, written by custseg assign.")],
    second: Annotated[Path, typer.Argument(help="Customers as of the later date, written with the same model.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write every flow to this CSV file (one row per flow).")
    ] = None,
) -> None:
    """Count who moved between segments from one custseg assign file to another (same model, two dates)."""
    from custseg.pipeline import compare

    with _user_errors():
        movements = compare(first, second)
        if out is not None:
            _write_flows(movements, out)
    if not _interactive():
        typer.echo(json.dumps(movements, indent=2))
        return
    console = Console(highlight=False)
    for kind, summary in movements.items():
        _print_migration(console, kind, summary)


def _write_flows(movements: dict, out: Path) -> None:
    import pandas as pd

    flows = pd.concat(
        [pd.DataFrame(summary["flows"]).assign(kind=kind) for kind, summary in movements.items()], ignore_index=True
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    flows[["kind", "from_segment", "to_segment", "customers", "revenue_before", "revenue_between"]].to_csv(
        out, index=False
    )


def _print_migration(console: Console, kind: str, summary: dict) -> None:
    """Print the customers from each segment (rows, first date) to each (columns, second date) and the sentences."""
    import pandas as pd

    from custseg.movement import matrix

    counts = matrix(pd.DataFrame(summary["flows"]))
    title = "Learned segments" if kind == "learned" else "RFM segments"
    table = _table(
        f"{title}: customers as of {summary['from_date']} (rows) and {summary['to_date']} (columns)",
        (("from \\ to", "left"), *((str(target), "right") for target in counts.columns), ("total", "right")),
    )
    for source, row in zip(counts.index, counts.to_numpy(), strict=True):
        table.add_row(str(source), *(f"{count:,}" for count in row), f"{row.sum():,}")
    table.add_row("total", *(f"{total:,}" for total in counts.sum(axis=0)), "")
    console.print(table)
    for sentence in summary["sentences"]:
        console.print(sentence)


@app.command("report")
def report_command(
    out_dir: Annotated[Path, typer.Argument(help="Output folder of custseg run.")],
) -> None:
    """Rebuild report.html of an output folder from its tables and run.json, without recomputing."""
    from custseg.report import build_report

    with _user_errors():
        written = build_report(out_dir)
    if _interactive():
        Console(highlight=False).print(f"Report: [bold]{written}[/bold]")
    else:
        typer.echo(json.dumps({"report": str(written)}))


@app.command("serve")
def serve_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Output folder of custseg run (or its model/).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_body_bytes: Annotated[int, typer.Option(help="Larger request bodies get 413.")] = 1_000_000,
) -> None:
    """Serve the model over HTTP: POST /v1/assign, GET /v1/segments, GET /healthz, docs at /docs.

    Set CUSTSEG_API_TOKEN to require that bearer token on /v1.
    """
    import uvicorn

    from custseg.api import TOKEN_VARIABLE, create_app

    with _user_errors():
        api = create_app(model, max_body_bytes=max_body_bytes)
    guarded = "bearer token required" if os.environ.get(TOKEN_VARIABLE) else f"open: {TOKEN_VARIABLE} is not set"
    typer.echo(f"custseg: serving {model} on http://{host}:{port} (docs at /docs; {guarded})", err=True)
    uvicorn.run(api, host=host, port=port, log_level="warning")


@app.command("simulate")
def simulate_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Log file to write: .parquet, .csv or .csv.gz.")],
    customers: Annotated[int, typer.Option("--customers", "-n", help="Customers with an id.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same bytes.")] = 0,
    layout: Annotated[
        str, typer.Option(help="uci (the UCI Online Retail log) or shopify (Shopify's orders export, CSV).")
    ] = "uci",
) -> None:
    """Write a simulated gift-shop log with planted segments (NAME.customers.*, NAME.products.*)."""
    from custseg.simulate import simulate_to_files

    with _user_errors():
        written = simulate_to_files(out, customers, seed, layout)
    if _interactive():
        Console(highlight=False).print(
            f"{written.rows:,} rows for {written.customers_with_id:,} customers (plus guests) in [bold]{written.log}"
            f"[/bold]; planted segments in {written.customers}, product kinds in {written.products}"
        )
    else:
        typer.echo(
            json.dumps(
                {
                    "log": str(written.log),
                    "customers_file": str(written.customers),
                    "products_file": str(written.products),
                    "rows": written.rows,
                    "customers": written.customers_with_id,
                }
            )
        )


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-out"),
    customers: Annotated[int, typer.Option("--customers", "-n", help="Simulated customers.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Simulate a gift shop with planted segments and run the whole pipeline on it."""
    from custseg.settings import load_settings
    from custseg.simulate import simulate_to_files

    with _user_errors():
        written = simulate_to_files(out / "simulated_shop.parquet", customers, seed)
        result = _run_with_progress(written.log, out, load_settings(None, seed=seed))
    _print_summary(result)
    if _interactive():
        Console(highlight=False).print(
            f"Simulated log: {written.log} ({written.rows:,} rows); planted truth: {written.customers}, "
            f"{written.products}"
        )


if __name__ == "__main__":
    app()
