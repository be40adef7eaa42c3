"""custseg from Python: run it on a shop's log, read a run's tables, assign segments with its model.

A notebook user wants the results as DataFrames and the model as an object, with the answers the
command line gives: `run` and `Model.assign` are the pipeline's own `run` and `assign`, and a `Run`
reads the output folder those write.
"""

from __future__ import annotations

import datetime
import functools
import html
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from custseg.errors import InputFileError
from custseg.model import FittedModel, load_model
from custseg.pipeline import assign as assign_with_model
from custseg.pipeline import run as run_pipeline
from custseg.settings import InputOptions, load_settings, parse_as_of, parse_column_map
from custseg.workspace import MANIFEST_FILE, read_table

Data = str | Path | pd.DataFrame | pa.Table
"""A transaction log: a file (CSV, gzip CSV, Parquet, Excel) or a table in memory."""


def run(data: Data, out: str | Path | None = None, *, config: str | Path | None = None, **settings: Any) -> Run:
    """Run every stage on a transaction log and return the results.

    Parameters
    ----------
    data : str, Path, DataFrame or pyarrow.Table
        The log: a file as for ``custseg run``, or a table in memory with the same columns.
    out : str or Path, optional
        The output folder. None: a temporary folder, removed with the returned `Run`.
    config : str or Path, optional
        A custseg.toml file (unlike the command line, ./custseg.toml is not read unless given).
    **settings
        The settings one by one, as the command-line options (`custseg.settings.OVERRIDES`):
        ``as_of="2011-09-01"``, ``seed=1``, ``n_segments=5``, ``model="kmeans"``,
        ``column_map={"customer_id": "Client"}``, ``engine="spark"``, ...

    Returns
    -------
    Run

    Raises
    ------
    CustsegError
        For a bad input or setting, with the one-line message the command line prints.
    TypeError
        For a keyword that is not a setting.

    Examples
    --------
    >>> import custseg
    >>> result = custseg.run("orders.csv", as_of="2011-12-01")  # doctest: +SKIP
    >>> result.segments[["name", "customers", "action"]]  # doctest: +SKIP
    """
    if isinstance(settings.get("column_map"), list | tuple):
        settings["column_map"] = parse_column_map(list(settings["column_map"]))
    loaded = load_settings(Path(config) if config is not None else None, **settings)
    temporary = tempfile.TemporaryDirectory(prefix="custseg-run-") if out is None else None
    folder = Path(temporary.name) / "out" if temporary is not None else Path(out)
    run_pipeline(data, folder, loaded)
    return Run(folder, _temporary=temporary)


def load(out_dir: str | Path) -> Run:
    """Open the output folder of an earlier run.

    Raises
    ------
    InputFileError
        If the folder holds no run.
    """
    if not (Path(out_dir) / MANIFEST_FILE).exists():
        raise InputFileError(f"{out_dir}: not the output folder of a custseg run (no {MANIFEST_FILE})")
    return Run(out_dir)


class Run:
    """The results of one custseg run, each table read from its output folder when first asked for.

    Parameters
    ----------
    out_dir : str or Path
        The output folder (`load` checks it is one).

    Attributes
    ----------
    out_dir : Path
    manifest : dict
        run.json: input and its checksum, settings, row counts, reconciliation, products, customers,
        RFM, the backtest, the segments and their choice, early prediction, timings, versions.
    """

    def __init__(self, out_dir: str | Path, *, _temporary: tempfile.TemporaryDirectory | None = None) -> None:
        self.out_dir = Path(out_dir)
        # A temporary folder lives as long as the Run: the finalizer of TemporaryDirectory removes it.
        self._temporary = _temporary

    @functools.cached_property
    def manifest(self) -> dict[str, Any]:
        """run.json."""
        import json

        return json.loads((self.out_dir / MANIFEST_FILE).read_text(encoding="utf-8"))

    @property
    def report_path(self) -> Path | None:
        """report.html, or None for a run that wrote none."""
        path = self.out_dir / "report.html"
        return path if path.exists() else None

    @functools.cached_property
    def customers(self) -> pd.DataFrame:
        """One row per customer: features, interests, RFM scores and segment, learned segment, early prediction."""
        return read_table(self.out_dir, "customers")

    @functools.cached_property
    def segments(self) -> pd.DataFrame:
        """The RFM and learned segments: sizes, profiles, backtest outcomes, names, descriptions, actions."""
        return read_table(self.out_dir, "segments")

    @functools.cached_property
    def products(self) -> pd.DataFrame:
        """One row per product: its sales and its category."""
        return read_table(self.out_dir, "products")

    @functools.cached_property
    def lines(self) -> pd.DataFrame:
        """The purchase lines kept by the cleaning, net of matched returns."""
        return read_table(self.out_dir, "lines")

    @functools.cached_property
    def rejected(self) -> pd.DataFrame:
        """Every input row not kept as a purchase line, with its reason."""
        return read_table(self.out_dir, "rejected")

    @functools.cached_property
    def transactions(self) -> pd.DataFrame:
        """The input rows in custseg's columns, as read (``row_id`` is the row's position in the input)."""
        return read_table(self.out_dir, "transactions")

    @functools.cached_property
    def model(self) -> Model:
        """The model this run wrote, to assign segments to other customers."""
        return Model.load(self.out_dir)

    def __repr__(self) -> str:
        return f"Run({str(self.out_dir)!r})"

    def _repr_html_(self) -> str:
        return summary_html(self.manifest, self.report_path)


class Model:
    """A model written by a run: RFM cut points and map, product categories, learned segments, early models.

    Load it with `Model.load` (or `Run.model`); `assign` gives the answer of ``custseg assign``.

    Parameters
    ----------
    fitted : FittedModel
        The checked, loaded model folder.
    folder : Path
        Where it was loaded from.

    Attributes
    ----------
    fitted : FittedModel
    folder : Path
    """

    def __init__(self, fitted: FittedModel, folder: Path) -> None:
        self.fitted = fitted
        self.folder = folder

    @classmethod
    def load(cls, folder: str | Path) -> Model:
        """Load a model from a run's output folder or its ``model/`` folder, checking every file first.

        Raises
        ------
        InputFileError
            For a missing, changed or untrusted model file, or a model of another version.
        """
        return cls(load_model(folder), Path(folder))

    @property
    def manifest(self) -> dict[str, Any]:
        """model.json."""
        return self.fitted.manifest

    @property
    def segments(self) -> pd.DataFrame:
        """The learned segments' profiles, names and actions (empty when the run learned none)."""
        return pd.DataFrame(self.manifest.get("segments") or [])

    def assign(
        self,
        transactions: Data,
        as_of: str | datetime.date | None = None,
        *,
        column_map: dict[str, str] | None = None,
        timestamp_format: str | None = None,
    ) -> pd.DataFrame:
        """Give the customers of ``transactions`` their RFM segment, learned segment and early prediction.

        Parameters
        ----------
        transactions : str, Path, DataFrame or pyarrow.Table
            Transactions of any customers, in the training data's layout (or mapped).
        as_of : str or date, optional
            The reference date; default: the day after the last transaction.
        column_map, timestamp_format : optional
            As for `run`, when the layout differs from the training data's.

        Returns
        -------
        DataFrame of shape (n_customers, n_columns)
            The rows and columns ``custseg assign`` writes, one per customer.
        """
        options = InputOptions(column_map=column_map or {}, timestamp_format=timestamp_format)
        with tempfile.TemporaryDirectory(prefix="custseg-assign-") as folder:
            out = Path(folder) / "assigned.parquet"
            assign_with_model(transactions, self.fitted, out, input_options=options, as_of=parse_as_of(as_of))
            return pd.read_parquet(out)

    def __repr__(self) -> str:
        return f"Model.load({str(self.folder)!r})"


def summary_html(manifest: dict[str, Any], report_path: Path | None) -> str:
    """One screen of a run for a notebook: the input, the cleaning, the customers and the segments."""
    escape = html.escape
    rows, money = manifest.get("rows", {}), manifest.get("reconciliation", {})
    reasons = sorted(((n, r) for r, n in rows.get("rejected_by_reason", {}).items() if n), reverse=True)
    parts = [
        f"<h4>custseg run of {escape(str(manifest.get('input', {}).get('path', '')))}</h4>",
        "<p>"
        + (
            f"{rows['input_rows']:,} rows: {rows['kept_rows']:,} kept, {rows['rejected_rows']:,} rejected"
            + (" (" + ", ".join(f"{escape(r)} {n:,}" for n, r in reasons[:4]) + ")" if reasons else "")
            + (
                f"; revenue {'reconciled' if money.get('balanced') else 'NOT reconciled'}: "
                f"{money.get('net_revenue', 0):,.2f} net"
                if money
                else ""
            )
            if rows
            else "no cleaning (the run stopped before it)"
        )
        + ".</p>",
    ]
    customers = manifest.get("customers")
    if customers:
        parts.append(f"<p>{customers['count']:,} customers as of {escape(customers['as_of'][:10])}.</p>")
    segments = manifest.get("segments", {})
    validation = manifest.get("validation", {})
    if "profiles" in segments:
        parts.append(f"<p>Learned segments: {escape(segments['reason'])}.</p>")
        learned = validation.get("segments", {})
        rfm = validation.get("rfm", {})
        if learned and rfm:
            parts.append(
                f"<p>Backtest ({validation['horizon_days']} days after {escape(validation['as_of'][:10])}, "
                f"{validation['customers']:,} customers): validity {learned['validity']:.3f} learned, "
                f"{rfm['validity']:.3f} RFM map.</p>"
            )
        cells = "".join(
            f"<tr><td>{escape(p['segment'])}</td><td>{escape(p['name'])}</td><td>{p['customers']:,}</td>"
            f"<td>{p['share']:.1%}</td><td>{p['revenue_share']:.1%}</td></tr>"
            for p in segments["profiles"]
        )
        parts.append(
            "<table><tr><th>segment</th><th>name</th><th>customers</th><th>share</th><th>revenue share</th></tr>"
            f"{cells}</table>"
        )
    elif "skipped" in segments:
        parts.append(f"<p>Learned segments skipped: {escape(segments['skipped'])}.</p>")
    if report_path is not None:
        parts.append(f'<p>Report: <a href="{escape(report_path.as_uri())}">{escape(str(report_path))}</a></p>')
    return "\n".join(parts)
