"""Run the stages in order, from a file to a finished output folder, with a record of the run.

A user wants one command that does everything and leaves behind how it was done: inputs and
their checksum, settings, row counts per rule, the revenue reconciliation, timings and versions.
"""

from __future__ import annotations

import datetime
import hashlib
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ibis.expr.types as ir

from custseg import __version__
from custseg.clean import check_partition, clean, reason_counts, reconcile
from custseg.errors import InvalidValueError, NoRowsLeftError
from custseg.features import customer_features, fully_returned_customers, reference_date
from custseg.io import SOURCE_ROW, Source, detect_timestamp_format, read_source
from custseg.rfm import RFMScorer, segment_summary
from custseg.schema import ColumnMapping, problem_summary, resolve_mapping, to_canonical
from custseg.settings import Settings
from custseg.workspace import Workspace

STAGES = ("read", "clean", "features", "rfm", "write")
"""Stage names in run order, as reported to the progress callback and in run.json timings."""


@dataclass
class RunResult:
    """What a finished run leaves: the output folder and the manifest written to run.json."""

    out_dir: Path
    manifest: dict[str, Any] = field(default_factory=dict)


class _Timings:
    def __init__(self, on_stage: Callable[[str], None] | None) -> None:
        self.seconds: dict[str, float] = {}
        self.on_stage = on_stage

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage is not None:
            self.on_stage(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def load_transactions(source: Source, settings: Settings) -> tuple[ir.Table, ColumnMapping, dict[str, Any]]:
    """Map a read source to the canonical transactions table and describe how it was read.

    Raises
    ------
    MissingColumnsError
        If required columns are missing.
    InvalidValueError
        If a column's share of unparseable values is above ``settings.input.max_invalid_share``.
    """
    options = settings.input
    mapping = resolve_mapping(source.columns, options.column_map, source_name=str(source.path))
    timestamp_format, tied = options.timestamp_format, []
    if timestamp_format is None:
        timestamp_format, tied = detect_timestamp_format(source.table, mapping.columns["invoiced_at"])
    transactions = to_canonical(source.table, mapping, timestamp_format=timestamp_format, row_id=SOURCE_ROW)
    described = {
        "path": str(source.path),
        "format": source.file_format,
        "encoding": source.encoding,
        "delimiter": source.delimiter,
        "columns": source.columns,
        "preset": mapping.preset,
        "column_map": mapping.columns,
        "timestamp_format": timestamp_format,
        "timestamp_format_ties": tied,
    }
    return transactions, mapping, described


def check_problems(transactions: ir.Table, source: Source, max_share: float) -> None:
    """Refuse the input when one column is mostly unparseable (wrong mapping or format).

    Raises
    ------
    InvalidValueError
        Naming the file, the first bad row and its column and value.
    """
    total = int(transactions.count().execute())
    for problem in problem_summary(transactions).execute().itertuples():
        if problem.rows > max_share * total:
            kind = "timestamps" if problem.problem_reason == "invalid_timestamp" else "numbers"
            raise InvalidValueError(
                f"{source.path}: row {problem.first_row}, column {problem.problem_column!r}: "
                f"{problem.first_value!r} is not valid ({problem.rows} of {total} rows in this column "
                f"are missing or not {kind}); check --map, or --date-format for timestamps"
            )


def package_versions() -> dict[str, str]:
    """Versions of custseg, Python and the packages that decide its results."""
    versions = {"custseg": __version__, "python": platform.python_version()}
    for package in ("ibis-framework", "duckdb", "pyarrow", "pandas", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def run(
    data: str | Path,
    out_dir: str | Path,
    settings: Settings | None = None,
    *,
    on_stage: Callable[[str], None] | None = None,
) -> RunResult:
    """Run every stage on ``data`` and fill ``out_dir``.

    Parameters
    ----------
    data : str or Path
        The transaction log (CSV, gzip CSV, Parquet or Excel).
    out_dir : str or Path
        The output folder (created; its previous database is replaced).
    settings : Settings, optional
        Defaults to `Settings()`.
    on_stage : callable, optional
        Called with each stage's name (`STAGES`) as it starts, for progress display.

    Returns
    -------
    RunResult

    Raises
    ------
    CustsegError
        For any problem with the input or the settings.
    """
    settings = settings or Settings()
    data = Path(data)
    timings = _Timings(on_stage)
    workspace = Workspace(out_dir)
    backend = workspace.open()
    try:
        with timings.stage("read"):
            source = read_source(data, backend, encoding=settings.input.encoding, delimiter=settings.input.delimiter)
            canonical, _, described = load_transactions(source, settings)
            transactions = workspace.save("transactions", canonical)
            check_problems(transactions, source, settings.input.max_invalid_share)
            described.update(bytes=data.stat().st_size, sha256=file_sha256(data))

        with timings.stage("clean"):
            result = clean(transactions, settings.clean)
            lines = workspace.save("lines", result.lines)
            rejected = workspace.save("rejected", result.rejected.order_by("row_id"))
            rows = check_partition(transactions, lines, rejected)
            rows["rejected_by_reason"] = reason_counts(rejected)
            if rows["kept_rows"] == 0:
                raise NoRowsLeftError(
                    f"{data}: no rows left after cleaning; rejected by reason: "
                    + ", ".join(f"{k} {v}" for k, v in rows["rejected_by_reason"].items() if v)
                )
            reconciliation = reconcile(transactions, lines, rejected)
            span = (
                lines.aggregate(
                    first=lines.invoiced_at.min(),
                    last=lines.invoiced_at.max(),
                    customers=lines.customer_id.nunique(),
                    orders=lines.invoice_id.nunique(),
                    products=lines.product_id.nunique(),
                )
                .execute()
                .iloc[0]
            )

        with timings.stage("features"):
            last_at = transactions.invoiced_at.max().execute()
            as_of = (
                datetime.datetime.combine(settings.as_of, datetime.time())
                if settings.as_of
                else reference_date(last_at)
            )
            features = workspace.save("customer_features", customer_features(lines, as_of), temp=True)
            all_returned = fully_returned_customers(lines, as_of).order_by("customer_id").execute()
            if int(features.count().execute()) == 0:
                raise NoRowsLeftError(f"{data}: no customer has an order with positive net revenue before {as_of}")

        with timings.stage("rfm"):
            scorer = RFMScorer.from_options(settings.rfm)
            scorer.fit(features.select("recency_days", "frequency", "monetary").execute())
            customers = workspace.save("customers", scorer.transform(features).order_by("customer_id"))
            customer_frame = customers.execute()
            rfm_segments = segment_summary(customer_frame, scorer.segment_rules())

        with timings.stage("write"):
            workspace.write_parquet(rejected, "rejected.parquet")
            workspace.write_parquet(customers, "customers.parquet")
            segments_table = rfm_segments.assign(kind="rfm")[["kind", *rfm_segments.columns]]
            workspace.write_csv(segments_table, "segments.csv")
            workspace.save("segments", segments_table)

        manifest = {
            "custseg_version": __version__,
            "input": described,
            "settings": settings.to_dict(),
            "rows": rows,
            "lines": {
                "customers": int(span.customers),
                "orders": int(span.orders),
                "products": int(span.products),
                "first_invoiced_at": str(span["first"]),
                "last_invoiced_at": str(span["last"]),
            },
            "reconciliation": reconciliation,
            "customers": {
                "as_of": as_of.isoformat(sep=" "),
                "count": len(customer_frame),
                "fully_returned": {
                    "count": len(all_returned),
                    "customer_ids": all_returned.customer_id.tolist(),
                },
            },
            "rfm": {
                "bins": scorer.bins,
                "cut_points": scorer.cut_points_,
                "segment_map": settings.rfm.segment_map,
                "segments": rfm_segments.drop(columns=["description", "action"]).to_dict(orient="records"),
            },
            "timings_s": timings.seconds,
            "versions": package_versions(),
        }
        workspace.write_json(manifest)
    finally:
        workspace.close()
    return RunResult(out_dir=Path(out_dir), manifest=manifest)
