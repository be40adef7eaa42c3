"""custseg from Python: run it on a shop's log, read a run's tables, assign segments with its model.

A notebook user wants the results as DataFrames and the model as an object, with the answers the
command line gives: `run` and `Model.assign` are the pipeline's own `run` and `assign`, and a `Run`
reads the output folder those write.
"""

from __future__ import annotations

import datetime
import functools
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from custseg.model import FittedModel, load_model
from custseg.pipeline import LEARN, assigned_customers
from custseg.pipeline import run as run_pipeline
from custseg.record import RunRecord, read_record
from custseg.rfm import RFMScorer
from custseg.settings import InputOptions, Settings, load_settings, parse_as_of, parse_column_map
from custseg.stages.backtest import Backtest
from custseg.stages.clean import Cleaned
from custseg.stages.customers import RFM, Features
from custseg.stages.early import Early
from custseg.stages.interests import Interests
from custseg.stages.movement import Movement
from custseg.stages.products import Products
from custseg.stages.read import Data, Read
from custseg.stages.segments import Segments
from custseg.stages.value import Value
from custseg.workers import workers_end_with_the_run
from custseg.workspace import Workspace, read_table

if TYPE_CHECKING:
    from custseg.report import Section


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
    """Open the output folder of an earlier run, reading its run.json first.

    Raises
    ------
    InputFileError
        If the folder holds no run, or its run.json cannot be read (damaged, or another version's).
    """
    run = Run(out_dir)
    run.record  # noqa: B018 (read now: a damaged run.json is refused here, not at first use)
    return run


class Run:
    """The results of one custseg run, each table read from its output folder when first asked for.

    Parameters
    ----------
    out_dir : str or Path
        The output folder (`load` checks it is one).

    Attributes
    ----------
    out_dir : Path
    record : RunRecord
        run.json: input and its checksum, settings, row counts, reconciliation, products, customers,
        RFM, the backtest, the segments and their choice, value, movement, early prediction, timings.
    """

    def __init__(self, out_dir: str | Path, *, _temporary: tempfile.TemporaryDirectory | None = None) -> None:
        self.out_dir = Path(out_dir)
        # A temporary folder lives as long as the Run: the finalizer of TemporaryDirectory removes it.
        self._temporary = _temporary

    @functools.cached_property
    def record(self) -> RunRecord:
        """run.json, as a `custseg.record.RunRecord`."""
        return read_record(self.out_dir)

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
        from custseg.report.notebook import summary_html

        return summary_html(self.record, self.report_path)


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

    Each method calls the step of the same name in the plan of ``custseg run``
    (`custseg.pipeline.LEARN`) on tables kept in a temporary DuckDB database for as long as this
    object lives. Every call caches its tables under names of its own, so that the customers as
    of two dates are two results side by side. Each result is a frozen dataclass; its ibis tables
    become DataFrames with ``.to_pandas()``.

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
    >>> clean = s.clean(read)  # doctest: +SKIP
    >>> products = s.products(clean)  # doctest: +SKIP
    >>> spring = s.features(read, clean, products, as_of="2011-04-01")  # doctest: +SKIP
    >>> s.rfm(spring).rfm.segments  # doctest: +SKIP
    """

    def __init__(self, *, config: str | Path | None = None, **settings: Any) -> None:
        self.config = config
        self.settings = settings
        self._store = None

    @functools.cached_property
    def settings_(self) -> Settings:
        """The settings in effect (checked)."""
        return _settings(self.config, dict(self.settings))

    def _step(self, name: str, **results: Any) -> Any:
        """Call the plan's step ``name`` with the given results, the settings and this object's store."""
        if self._store is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="custseg-stages-")
            workspace = Workspace(Path(self._temporary.name) / "tables", self.settings_.engine)
            workspace.open()
            self._store = _Namespaced(workspace)
        step = next(step for step in LEARN if step.name == name)
        with workers_end_with_the_run():
            return step.function(settings=self.settings_, store=self._store, **results)

    def read(self, data: Data) -> Read:
        """Read a file or table into custseg's columns (`custseg.stages.read.read_input`)."""
        return self._step("read", data=data)

    def clean(self, read: Read) -> Cleaned:
        """Clean the transactions and match returns (`custseg.stages.clean.clean_lines`)."""
        return self._step("clean", read=read)

    def products(self, clean: Cleaned) -> Products:
        """Learn product categories (`custseg.stages.products.learn_products`)."""
        return self._step("products", clean=clean)

    def features(
        self, read: Read, clean: Cleaned, products: Products, as_of: str | datetime.date | None = None
    ) -> Features:
        """Describe every customer as of a date (default: the settings', else the day after the data)."""
        moment = None if as_of is None else datetime.datetime.combine(parse_as_of(as_of), datetime.time())
        return self._step("features", read=read, clean=clean, products=products, as_of=moment)

    def rfm(self, features: Features, scorer: RFMScorer | None = None) -> RFM:
        """Score RFM, with cut points learned on these customers unless a fitted ``scorer`` is given."""
        return self._step("rfm", features=features, scorer=scorer)

    def backtest(self, clean: Cleaned, products: Products, features: Features) -> Backtest:
        """Build the customers as of T - H with what they did in the last H days (`custseg.stages.backtest`)."""
        return self._step("backtest", clean=clean, products=products, features=features)

    def interests(
        self, clean: Cleaned, products: Products, features: Features, rfm: RFM, backtest: Backtest
    ) -> Interests:
        """Learn the interest groups on the backtest and give every customer one (`custseg.stages.interests`)."""
        return self._step("interests", clean=clean, products=products, features=features, rfm=rfm, backtest=backtest)

    def segments(self, read: Read, rfm: RFM, interests: Interests, products: Products, backtest: Backtest) -> Segments:
        """Choose, fit, profile and name the learned segments (`custseg.stages.segments.learn_segments`)."""
        return self._step("segments", read=read, rfm=rfm, interests=interests, products=products, backtest=backtest)

    def movement(self, backtest: Backtest, rfm: RFM, segments: Segments, features: Features) -> Movement:
        """Apply the final segments to the customers as of T - H; count who moved where."""
        return self._step("movement", backtest=backtest, rfm=rfm, segments=segments, features=features)

    def value(
        self,
        segments: Segments,
        backtest: Backtest,
        movement: Movement,
        clean: Cleaned,
        products: Products,
        features: Features,
    ) -> Value:
        """Learn the expected value on the backtest and give it to every customer (`custseg.stages.value`)."""
        return self._step(
            "value",
            segments=segments,
            backtest=backtest,
            movement=movement,
            clean=clean,
            products=products,
            features=features,
        )

    def early(self, value: Value, clean: Cleaned, products: Products, features: Features, segments: Segments) -> Early:
        """Learn the early models, measure them on a hold-out and predict the young customers."""
        return self._step("early", value=value, clean=clean, products=products, features=features, segments=segments)


class _Namespaced:
    """A workspace whose every cached table gets a name of its own (``customers_7``), kept while it is open."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.engine = workspace.engine
        self._calls = 0

    def cache(self, name: str, table) -> Any:
        self._calls += 1
        return self.workspace.cache(f"{name}_{self._calls}", table)
