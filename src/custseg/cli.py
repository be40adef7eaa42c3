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

from custseg import __version__
from custseg.errors import ConfigError, CustsegError, RenamedSettingWarning

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
    from custseg.pipeline import plan_of, run

    if not _interactive():
        return run(data, out, settings)
    from custseg.progress import stage_progress

    with stage_progress([step.name for step in plan_of(settings)]) as on_stage:
        return run(data, out, settings, on_stage=on_stage)


def _print_summary(result: RunResult) -> None:
    from custseg.report.terminal import print_run, run_summary, tie_note

    note = tie_note(result.record)
    if note:
        typer.echo(note, err=True)
    if _interactive():
        print_run(Console(highlight=False), result.record, result.out_dir)
    else:
        typer.echo(json.dumps(run_summary(result.record, result.out_dir), indent=2))


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
CurrencyOption = Annotated[
    str | None,
    typer.Option(
        "--currency", help="ISO 4217 code of the amounts, e.g. GBP, when the file does not say it (default: detected)."
    ),
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
    currency: CurrencyOption = None,
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
        str | None,
        typer.Option("--model", help="Force the segmentation model: kmeans, tiers, gmm, ward, hdbscan or rules."),
    ] = None,
    n_segments: Annotated[int | None, typer.Option("--segments", help="Force the number of learned segments.")] = None,
    segments_from: Annotated[
        Path | None,
        typer.Option(
            "--segments-from",
            help="Keep the segments of an earlier run (its output folder): its rules and names applied to "
            "today's customers, compared with a fresh fit.",
        ),
    ] = None,
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
            currency=currency,
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
            segments_from=None if segments_from is None else str(segments_from),
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
    """Give customers their RFM and learned segments and expected value with a model written by custseg run.

    Their reference date is --as-of, or else the day after the last transaction in DATA; it is said
    with the reason, and with the model's own date when that differs.
    """
    from custseg.model import load_model
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
        reference = parse_as_of(as_of)
        fitted = load_model(model)
        record = assign(data, fitted, out, input_options=options, as_of=reference)
    used, trained = record.customers.as_of, fitted.as_of
    why = "given with --as-of" if reference is not None else "the day after the last transaction in these rows"
    hint = None
    if reference is None and used != trained:
        hint = (
            f"the model is as of {trained.date()}: to score these customers as of the run that trained it, "
            f"pass --as-of {trained.date()}"
        )
    summary = {
        "out": str(out),
        "customers": record.customers.count,
        "as_of": used.isoformat(sep=" "),
        "as_of_source": "given" if reference is not None else "last_transaction",
        "as_of_note": why if hint is None else f"{why}; {hint}",
        "model_as_of": trained.isoformat(sep=" "),
        "with_learned_segment": record.segments.assigned,
        "with_early_prediction": record.early.predicted_customers,
        "products_unknown_to_the_model": record.products.unknown_to_the_model,
    }
    if _interactive():
        console = Console(highlight=False)
        console.print(f"{summary['customers']:,} customers as of {used.date()} ({why}) -> [bold]{out}[/bold]")
        console.print(
            f"{summary['with_learned_segment']:,} with a learned segment, "
            f"{summary['with_early_prediction']:,} new ones with an early prediction; "
            f"{summary['products_unknown_to_the_model']:,} products the model had not seen"
        )
        if hint is not None:
            console.print(f"Note: {hint}.")
    else:
        typer.echo(json.dumps(summary))


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Output folder of custseg run.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder of the lists (default: the run's lists/, replaced).")
    ] = None,
    segmentation: Annotated[
        str | None,
        typer.Option(
            "--segments", help="learned or rfm: the segments the lists follow (default: the one the report recommends)."
        ),
    ] = None,
) -> None:
    """Write one CSV per segment, ready to import into an email or ads tool (Klaviyo, Mailchimp)."""
    from custseg.lists import SEGMENTATIONS
    from custseg.pipeline import export_lists

    with _user_errors():
        if segmentation is not None and segmentation not in SEGMENTATIONS:
            raise ConfigError(f"--segments {segmentation}: must be one of {', '.join(SEGMENTATIONS)}")
        written = export_lists(run_dir, out, segmentation)
    if _interactive():
        console = Console(highlight=False)
        console.print(f"{len(written)} lists in [bold]{written[0].parent if written else out}[/bold]:")
        for path in written:
            rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
            console.print(f"  {path.name}  ({rows:,} customers)")
    else:
        typer.echo(json.dumps({"lists": [str(path) for path in written]}))


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
    from custseg.record import to_dict
    from custseg.report.terminal import print_migration

    with _user_errors():
        movements = compare(first, second)
        if out is not None:
            _write_flows(movements, out)
    if not _interactive():
        typer.echo(json.dumps({kind: to_dict(migration) for kind, migration in movements.items()}, indent=2))
        return
    console = Console(highlight=False)
    for kind, migration in movements.items():
        print_migration(console, kind, migration)


def _write_flows(movements: dict, out: Path) -> None:
    import pandas as pd

    flows = pd.concat(
        [pd.DataFrame(migration.flows).assign(kind=kind) for kind, migration in movements.items()], ignore_index=True
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    flows[["kind", "from_segment", "to_segment", "customers", "revenue_before", "revenue_between"]].to_csv(
        out, index=False
    )


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
