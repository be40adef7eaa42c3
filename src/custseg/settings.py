"""The settings of a run: one small frozen object, built from custseg.toml and the command line.

Nothing reads settings from a global registry; every stage gets the part it needs as an argument.
"""

from __future__ import annotations

import dataclasses
import datetime
import tomllib
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custseg.backtest import BacktestOptions
from custseg.clean import CleanRules
from custseg.cluster import ClusterOptions
from custseg.early import EarlyOptions
from custseg.engine import EngineOptions
from custseg.errors import ConfigError, RenamedSettingWarning
from custseg.products import ProductOptions
from custseg.rfm import RFMOptions
from custseg.schema import CANONICAL_COLUMNS, MAPPABLE_COLUMNS
from custseg.value import ValueOptions


@dataclass(frozen=True)
class InputOptions:
    """How to read the input file.

    Attributes
    ----------
    column_map : dict of str to str
        Canonical column name -> source column name; overrides the detected preset.
    encoding : str or None
        Text encoding of a CSV; None detects it (UTF-8 with or without BOM, else ISO-8859-1).
    delimiter : str or None
        CSV delimiter; None detects it from the header line.
    timestamp_format : str or None
        strptime format of text timestamps; None detects it from the data.
    max_invalid_share : float
        Above this share of unparseable values in one column the input is refused as a whole
        (a wrong mapping or format), below it the rows are rejected one by one.
    table, query : str or None
        With a ``postgresql://`` input: the table (``schema.table`` allowed) or SELECT statement
        that holds the orders (`custseg.database`).
    """

    column_map: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
    timestamp_format: str | None = None
    max_invalid_share: float = 0.05
    table: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything a run needs besides the input file."""

    input: InputOptions = field(default_factory=InputOptions)
    clean: CleanRules = field(default_factory=CleanRules)
    products: ProductOptions = field(default_factory=ProductOptions)
    rfm: RFMOptions = field(default_factory=RFMOptions)
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    backtest: BacktestOptions = field(default_factory=BacktestOptions)
    early: EarlyOptions = field(default_factory=EarlyOptions)
    value: ValueOptions = field(default_factory=ValueOptions)
    as_of: datetime.date | None = None
    seed: int = 0
    engine: EngineOptions = field(default_factory=EngineOptions)
    recipe: str = "custseg"

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} must be a whole number, at least 0")
        if self.recipe not in ("custseg", "course"):
            raise ConfigError(f"recipe={self.recipe!r} must be custseg or course")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON-ready data (for run.json): tuples as lists, a date as text."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def parse_column_map(pairs: list[str]) -> dict[str, str]:
    """Parse ``canonical=source`` strings (the ``--map`` option) into a mapping.

    Raises
    ------
    ConfigError
        If a pair has no ``=`` or names an unknown canonical column.
    """
    mapping = _parse_pairs(pairs, "--map", "canonical=source, e.g. customer_id=Client")
    _check_canonical_names(mapping, "--map")
    return mapping


def parse_spark_conf(pairs: list[str]) -> dict[str, str]:
    """Parse ``key=value`` strings (the ``--spark-conf`` option) into Spark settings.

    Raises
    ------
    ConfigError
        If a pair has no ``=``.
    """
    return _parse_pairs(pairs, "--spark-conf", "key=value, e.g. spark.driver.memory=8g")


def _parse_pairs(pairs: list[str], option: str, shape: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"{option} {pair!r} must look like {shape}")
        parsed[key] = value
    return parsed


def parse_as_of(value: str | datetime.date | None) -> datetime.date | None:
    """Read the reference date from text like ``2011-12-10`` (or a date); None stays None.

    Raises
    ------
    ConfigError
        If the text is not a date of that form.
    """
    if isinstance(value, datetime.datetime):
        return value.date()
    if value is None or isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"as_of={value!r} must be a date like 2011-12-10") from None


def _check_canonical_names(mapping: dict[str, str], where: str) -> None:
    unknown = sorted(set(mapping) - set(MAPPABLE_COLUMNS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown canonical column(s) {', '.join(unknown)}; known: {', '.join(MAPPABLE_COLUMNS)}"
        )


_TOML_SECTIONS = {
    "columns",
    "input",
    "clean",
    "products",
    "rfm",
    "cluster",
    "backtest",
    "early",
    "value",
    "engine",
    "run",
}


RENAMED_TABLES = {"validation": "backtest", "predict": "early"}
"""Tables of custseg.toml under their earlier names: still read, with a warning."""


def _renamed_tables(doc: dict[str, Any], config_path: Path | None) -> dict[str, Any]:
    """Read a table under its earlier name (`RENAMED_TABLES`) as the new one, and say so once."""
    doc = dict(doc)
    for old, new in RENAMED_TABLES.items():
        if old not in doc:
            continue
        if new in doc:
            raise ConfigError(f"{config_path}: [{old}] and [{new}] are the same table; keep [{new}] only")
        warnings.warn(
            f"{config_path}: [{old}] is now called [{new}]; read as [{new}] (rename it to silence this)",
            RenamedSettingWarning,
            stacklevel=3,
        )
        doc[new] = doc.pop(old)
    return doc


OVERRIDES = (
    "as_of",
    "seed",
    "n_segments",
    "model",
    "rfm_bins",
    "rfm_map",
    "column_map",
    "encoding",
    "delimiter",
    "timestamp_format",
    "table",
    "query",
    "category_map",
    "recipe",
    "memory_limit",
    "engine",
    "spark_master",
    "spark_conf",
)
"""The settings given one by one (command-line options, keywords of `custseg.run`), over the file's."""


def load_settings(config_path: Path | None, **overrides: Any) -> Settings:
    """Build the settings from a custseg.toml file (optional) and command-line overrides.

    Parameters
    ----------
    config_path : Path or None
        A TOML file with optional tables ``[columns]`` (canonical = "source"), ``[input]``
        (encoding, delimiter, timestamp_format, max_invalid_share), ``[clean]`` (the fields of
        `CleanRules`), ``[products]`` (the fields of `ProductOptions`), ``[rfm]`` (the fields of
        `RFMOptions`), ``[cluster]`` (the fields of `ClusterOptions`), ``[backtest]`` (the fields of
        `custseg.backtest.BacktestOptions`), ``[early]`` (the fields of
        `EarlyOptions`), ``[value]`` (the fields of `custseg.value.ValueOptions`), ``[engine]``
        (the fields of `custseg.engine.EngineOptions`; ``spark_conf``
        a table of Spark settings) and ``[run]`` (seed, as_of, memory_limit).
    **overrides
        `OVERRIDES`: ``column_map`` (a dict, canonical name to source column), ``encoding``,
        ``delimiter``, ``timestamp_format``, ``table``, ``query``, ``seed``, ``as_of``, ``rfm_bins``, ``rfm_map``,
        ``memory_limit``, ``category_map``, ``model``, ``n_segments``, ``recipe``, ``engine``,
        ``spark_master``, ``spark_conf`` (a dict, merged over the file's); None means "not given",
        and a given value wins over the file.

    Raises
    ------
    ConfigError
        If the file cannot be parsed or holds unknown keys.
    TypeError
        For an override that is not one of `OVERRIDES`.
    """
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(OVERRIDES)}")
    doc: dict[str, Any] = {}
    if config_path is not None:
        try:
            doc = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{config_path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
    doc = _renamed_tables(doc, config_path)
    unknown = sorted(set(doc) - _TOML_SECTIONS)
    if unknown:
        raise ConfigError(f"{config_path}: unknown table(s) {', '.join(unknown)}")
    try:
        return _settings_from(doc, str(config_path), overrides)
    except ConfigError as exc:
        # Each options class checks its own values; say which file they came from.
        if config_path is None or str(exc).startswith(str(config_path)):
            raise
        raise ConfigError(f"{config_path}: {exc}") from None


def _settings_from(doc: dict[str, Any], where: str, overrides: dict[str, Any]) -> Settings:

    column_map = {str(k): str(v) for k, v in doc.get("columns", {}).items()}
    _check_canonical_names(column_map, f"{where} [columns]")
    column_map.update(overrides.get("column_map") or {})

    input_doc = _known_keys(doc.get("input", {}), InputOptions, f"{where} [input]")
    input_doc.pop("column_map", None)
    for key in ("encoding", "delimiter", "timestamp_format", "table", "query"):
        if overrides.get(key) is not None:
            input_doc[key] = overrides[key]
    input_options = InputOptions(column_map=column_map, **input_doc)

    clean_doc = _known_keys(doc.get("clean", {}), CleanRules, f"{where} [clean]")
    clean_rules = CleanRules(**{k: tuple(v) if isinstance(v, list) else v for k, v in clean_doc.items()})

    rfm_doc = _known_keys(doc.get("rfm", {}), RFMOptions, f"{where} [rfm]")
    if overrides.get("rfm_bins") is not None:
        rfm_doc["bins"] = overrides["rfm_bins"]
    if overrides.get("rfm_map") is not None:
        rfm_doc["segment_map"] = overrides["rfm_map"]
    rfm_options = RFMOptions(**rfm_doc)

    products_doc = _known_keys(doc.get("products", {}), ProductOptions, f"{where} [products]")
    if overrides.get("category_map") is not None:
        products_doc["mapping_file"] = str(overrides["category_map"])
    product_options = ProductOptions(**products_doc)

    cluster_doc = _known_keys(doc.get("cluster", {}), ClusterOptions, f"{where} [cluster]")
    for key in ("model", "n_segments"):
        if overrides.get(key) is not None:
            cluster_doc[key] = overrides[key]
    cluster_options = ClusterOptions(**cluster_doc)

    backtest_options = BacktestOptions(**_known_keys(doc.get("backtest", {}), BacktestOptions, f"{where} [backtest]"))
    early_options = EarlyOptions(**_known_keys(doc.get("early", {}), EarlyOptions, f"{where} [early]"))
    value_options = ValueOptions(**_known_keys(doc.get("value", {}), ValueOptions, f"{where} [value]"))

    run_doc = _known_keys(doc.get("run", {}), _RunTable, f"{where} [run]")
    seed = overrides.get("seed")
    if seed is None:
        seed = run_doc.get("seed", 0)
    as_of = parse_as_of(overrides.get("as_of") or run_doc.get("as_of"))
    engine_table = dict(doc.get("engine", {}))
    if isinstance(engine_table.get("spark_conf"), dict):
        # Spark reads every setting as text; TOML's `spark.executor.cores = 4` means "4".
        engine_table["spark_conf"] = {str(k): str(v) for k, v in engine_table["spark_conf"].items()}
    engine_doc = _known_keys(engine_table, EngineOptions, f"{where} [engine]")
    if run_doc.get("memory_limit") is not None:
        engine_doc.setdefault("memory_limit", run_doc["memory_limit"])
    for key, override in (("name", "engine"), ("memory_limit", "memory_limit"), ("spark_master", "spark_master")):
        if overrides.get(override) is not None:
            engine_doc[key] = overrides[override]
    spark_conf = dict(engine_doc.get("spark_conf", {}))
    spark_conf.update(overrides.get("spark_conf") or {})
    engine_doc["spark_conf"] = spark_conf
    engine = EngineOptions(**engine_doc)
    recipe = overrides.get("recipe") or run_doc.get("recipe") or "custseg"
    return Settings(
        input=input_options,
        clean=clean_rules,
        products=product_options,
        rfm=rfm_options,
        cluster=cluster_options,
        backtest=backtest_options,
        early=early_options,
        value=value_options,
        as_of=as_of,
        seed=seed,
        engine=engine,
        recipe=recipe,
    )


@dataclass(frozen=True)
class _RunTable:
    seed: int = 0
    as_of: str | datetime.date | None = None
    memory_limit: str | None = None
    recipe: str = "custseg"


def _known_keys(table: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    """Check that each key of a TOML table is a field of ``cls`` holding a value of its type."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    for key, value in table.items():
        if not _has_type(value, hints[key]):
            raise ConfigError(f"{where}: {key} = {value!r} must be {_type_words(hints[key])}")
    return dict(table)


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a field's annotation (a TOML array stands for a list or tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (types.UnionType, typing.Union):
        return any(_has_type(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, list | tuple) and all(_has_type(item, args[0]) for item in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict) and (
            not args or all(_has_type(k, args[0]) and _has_type(v, args[1]) for k, v in value.items())
        )
    return isinstance(value, hint)


_PLURAL = {bool: "true or false values", int: "whole numbers", float: "numbers", str: "texts", dict: "tables"}


def _type_words(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_words(arg) for arg in args)
    if origin in (list, tuple):
        return f"a list of {_PLURAL.get(args[0], 'values')}" if args else "a list"
    if origin is dict or hint is dict:
        return "a table"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a text", type(None): "absent"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


__all__ = [
    "CANONICAL_COLUMNS",
    "InputOptions",
    "Settings",
    "load_settings",
    "parse_as_of",
    "parse_column_map",
    "parse_spark_conf",
]


def settings_from_dict(data: dict[str, Any]) -> Settings:
    """Rebuild `Settings` from `Settings.to_dict` output (e.g. a model's model.json)."""
    return Settings(
        input=InputOptions(**data["input"]),
        clean=CleanRules(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["clean"].items()}),
        products=ProductOptions(**data["products"]),
        rfm=RFMOptions(**data["rfm"]),
        cluster=ClusterOptions(**data["cluster"]),
        backtest=BacktestOptions(**data.get("backtest", {})),
        early=EarlyOptions(**data.get("early", {})),
        value=ValueOptions(**data.get("value", {})),
        as_of=parse_as_of(data.get("as_of")),
        seed=data.get("seed", 0),
        engine=EngineOptions(**data.get("engine", {})),
        recipe=data.get("recipe", "custseg"),
    )
