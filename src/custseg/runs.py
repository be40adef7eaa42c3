"""custseg from Python: run it on a shop's log, read a run's tables, assign segments with its model.

A notebook user wants the results as DataFrames and the model as an object, with the answers the
command line gives: `run` and `Model.assign` are the pipeline's own `run` and `assign`, and a `Run`
reads the output folder those write.
"""

from __future__ import annotations

import datetime
import functools
import html
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from custseg import stages as stage
from custseg.errors import InputFileError
from custseg.model import FittedModel, load_model
from custseg.pipeline import as_input, assigned_customers
from custseg.pipeline import run as run_pipeline
from custseg.rfm import RFMScorer
from custseg.settings import InputOptions, Settings, load_settings, parse_as_of, parse_column_map
from custseg.workspace import MANIFEST_FILE, Workspace, read_table

if TYPE_CHECKING:
    from custseg.report import Section

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
    loaded = _settings(config, settings)
    temporary = tempfile.TemporaryDirectory(prefix="custseg-run-") if out is None else None
    folder = Path(temporary.name) / "out" if temporary is not None else Path(out)
    run_pipeline(data, folder, loaded)
    return Run(folder, _temporary=temporary)


def _settings(config: str | Path | None, settings: dict[str, Any]) -> Settings:
    if isinstance(settings.get("column_map"), list | tuple):
        settings["column_map"] = parse_column_map(list(settings["column_map"]))
    return load_settings(Path(config) if config is not None else None, **settings)


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

    @functools.cached_property
    def sections(self) -> dict[str, Section]:
        """The report's sections by key.

        The keys: ``quality``, ``exploration``, ``products``, ``rfm``, ``learned``, ``backtest``,
        ``value``, ``movement``, ``early``, ``actions`` (those the run's stages allow). Each holds
        its title, intro, charts (a Plotly figure and the sentence that reads it) and tables: the
        report's own, to show in a notebook with ``chart.figure.show()``.
        """
        from custseg.report import run_sections

        return {section.key: section for section in run_sections(self.out_dir)[1]}

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
        """Give the customers of ``transactions`` their RFM and learned segments, expected value and early prediction.

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
        assigned, _ = assigned_customers(transactions, self.fitted, input_options=options, as_of=parse_as_of(as_of))
        return assigned

    def __repr__(self) -> str:
        return f"Model.load({str(self.folder)!r})"


class Stages:
    """The stages of a run one by one, for a notebook: each takes earlier results and returns its own.

    The same functions as `run` (`custseg.stages`), on tables kept in a temporary DuckDB database
    for as long as this object lives. Every call stores its tables under names of their own, so
    that the customers as of two dates are two results side by side. Each result is a frozen
    dataclass; its ibis tables become DataFrames with ``.to_pandas()``.

    Parameters
    ----------
    config : str or Path, optional
        A custseg.toml file.
    **settings
        As for `run`.

    Examples
    --------
    >>> s = custseg.Stages(seed=0)  # doctest: +SKIP
    >>> read = s.read("orders.csv")  # doctest: +SKIP
    >>> cleaned = s.clean(read)  # doctest: +SKIP
    >>> products = s.products(cleaned)  # doctest: +SKIP
    >>> spring = s.features(read, cleaned, products, as_of="2011-04-01")  # doctest: +SKIP
    >>> s.rfm(spring).segments  # doctest: +SKIP
    """

    def __init__(self, *, config: str | Path | None = None, **settings: Any) -> None:
        self.config = config
        self.settings = settings
        self._workspace = None

    @functools.cached_property
    def settings_(self) -> Settings:
        """The settings in effect (checked)."""
        return _settings(self.config, dict(self.settings))

    @property
    def _store(self) -> _Namespaced:
        if self._workspace is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="custseg-stages-")
            workspace = Workspace(Path(self._temporary.name) / "tables", self.settings_.engine)
            workspace.open()
            self._workspace = _Namespaced(workspace)
        return self._workspace

    def read(self, data: Data) -> stage.Read:
        """Read a file or table into custseg's columns (`custseg.stages.read`)."""
        return stage.read(as_input(data), self.settings_, self._store)

    def clean(self, read: stage.Read) -> stage.Cleaned:
        """Clean the transactions and match returns (`custseg.stages.clean_lines`)."""
        return stage.clean_lines(read.transactions, self.settings_, self._store, read.summary["path"])

    def products(self, cleaned: stage.Cleaned) -> stage.Products:
        """Learn product categories (`custseg.stages.learn_products`)."""
        return stage.learn_products(cleaned.lines, self.settings_, self._store)

    def features(
        self,
        read: stage.Read,
        cleaned: stage.Cleaned,
        products: stage.Products,
        as_of: str | datetime.date | None = None,
    ) -> stage.Features:
        """Describe every customer as of a date (default: the settings', else the day after the data)."""
        settings = self.settings_
        if as_of is not None:
            day = parse_as_of(as_of)
            moment = datetime.datetime.combine(day, datetime.time())
        else:
            moment = stage.default_as_of(settings, read.transactions)
        return stage.customer_features(cleaned.lines, products, moment, self._store, read.summary["path"])

    def rfm(self, features: stage.Features, scorer: RFMScorer | None = None) -> stage.RFM:
        """Score RFM, with cut points learned on these customers unless a fitted ``scorer`` is given."""
        settings = self.settings_
        scorer = scorer or RFMScorer.from_options(settings.rfm).fit(features.customers)
        return stage.score_rfm(features, scorer, settings.rfm.segment_map, self._store)

    def backtest(self, cleaned: stage.Cleaned, products: stage.Products, features: stage.Features) -> stage.Backtest:
        """Build the customers as of T - H with what they did next (`custseg.stages.backtest`)."""
        first_at = cleaned.span["first_invoiced_at"]
        return stage.backtest(cleaned.lines, products, features.as_of, first_at, self.settings_, self._store)

    def segments(self, rfm: stage.RFM, products: stage.Products, backtest: stage.Backtest) -> stage.Segments:
        """Choose, fit, profile and name the learned segments (`custseg.stages.learn_segments`)."""
        return stage.learn_segments(rfm, products, backtest, self.settings_, self._store)

    def movement(
        self, backtest: stage.Backtest, rfm: stage.RFM, segments: stage.Segments, features: stage.Features
    ) -> stage.Movement:
        """Apply the final segments to the customers as of T - H; count who moved where (`stages.segment_movement`)."""
        return stage.segment_movement(backtest, rfm, segments, features.as_of, self.settings_, self._store)

    def value(
        self,
        segments: stage.Segments,
        backtest: stage.Backtest,
        movement: stage.Movement,
        cleaned: stage.Cleaned,
        products: stage.Products,
        features: stage.Features,
    ) -> stage.Value:
        """Learn the expected value on the backtest and give it to every customer (`custseg.stages.learn_value`)."""
        return stage.learn_value(
            segments.customers,
            segments.table,
            backtest,
            movement,
            cleaned.lines,
            products,
            features.as_of,
            cleaned.span["first_invoiced_at"],
            self.settings_,
            self._store,
        )

    def early_models(
        self, cleaned: stage.Cleaned, products: stage.Products, features: stage.Features, segments: stage.Segments
    ) -> stage.EarlyModels:
        """Fit and measure the early-prediction models (`custseg.stages.learn_early`)."""
        return stage.learn_early(
            cleaned.lines, products, features.as_of, segments.segmentation, self.settings_, self._store
        )

    def predict_early(
        self,
        segments: stage.Segments,
        cleaned: stage.Cleaned,
        products: stage.Products,
        features: stage.Features,
        models: stage.EarlyModels,
        value: stage.Value | None = None,
    ) -> stage.Early:
        """Add the early prediction to the customers younger than the horizon (`custseg.stages.predict_early`).

        The customers are the value's when given (they carry the value columns), else the segments'.
        """
        return stage.predict_early(
            (value or segments).customers,
            cleaned.lines,
            products,
            features.as_of,
            models,
            segments.names,
            segments.segmentation,
            self.settings_,
            self._store,
        )


class _Namespaced:
    """A workspace whose every stored table gets a name of its own (``customers_7``), kept while it is open."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.engine = workspace.engine
        self._calls = 0

    def save(self, name: str, table, *, temp: bool = False):
        self._calls += 1
        return self.workspace.save(f"{name}_{self._calls}", table, temp=True)


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
    course = manifest.get("course")
    if course:
        counts, held = course["counts"], sum(c["holds"] for c in course["comparison"])
        parts[1] = (
            f"<p>The published course pipeline (<code>--recipe course</code>): {counts['rows_raw']:,} rows to "
            f"{counts['rows_final']:,}, {counts['customers']:,} customers, {counts['customers_after_trim']:,} after "
            f"its trim of the top customers; {held} of {len(course['comparison'])} published figures reproduced.</p>"
        )
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
        link = escape(report_path.resolve().as_uri())
        parts.append(f'<p>Report: <a href="{link}">{escape(str(report_path))}</a></p>')
    return "\n".join(parts)
