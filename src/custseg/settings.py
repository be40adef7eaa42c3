"""The settings of a run: one small frozen object, built from custseg.toml and the command line.

Nothing reads settings from a global registry; every stage gets the part it needs as an argument.
"""

from __future__ import annotations

import dataclasses
import datetime
import numbers
import os
import re
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
    currency : str or None
        The ISO 4217 code of the amounts (``GBP``, ``EUR``) when the input does not say it: an
        export's currency column, or a layout of one shop's (`custseg.presets.Preset.currency`),
        does; a code that contradicts the export's is an error.
    """

    column_map: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
    timestamp_format: str | None = None
    max_invalid_share: float = 0.05
    table: str | None = None
    query: str | None = None
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.currency is not None and not re.fullmatch(r"[A-Za-z]{3}", self.currency):
            raise ConfigError(f"currency={self.currency!r} must be a three-letter ISO 4217 code, e.g. GBP, EUR or USD")
        if self.currency is not None:
            object.__setattr__(self, "currency", self.currency.upper())


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
        key, sep, value = str(pair).partition("=")
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


@dataclass(frozen=True)
class _RunTable:
    """The ``[run]`` table of custseg.toml."""

    seed: int = 0
    as_of: str | datetime.date | None = None
    memory_limit: str | None = None
    recipe: str = "custseg"


OVERRIDES: dict[str, tuple[type, str]] = {
    "as_of": (_RunTable, "as_of"),
    "seed": (_RunTable, "seed"),
    "n_segments": (ClusterOptions, "n_segments"),
    "model": (ClusterOptions, "model"),
    "segments_from": (ClusterOptions, "segments_from"),
    "rfm_bins": (RFMOptions, "bins"),
    "rfm_map": (RFMOptions, "segment_map"),
    "column_map": (InputOptions, "column_map"),
    "encoding": (InputOptions, "encoding"),
    "delimiter": (InputOptions, "delimiter"),
    "timestamp_format": (InputOptions, "timestamp_format"),
    "table": (InputOptions, "table"),
    "query": (InputOptions, "query"),
    "currency": (InputOptions, "currency"),
    "category_map": (ProductOptions, "mapping_file"),
    "recipe": (_RunTable, "recipe"),
    "memory_limit": (EngineOptions, "memory_limit"),
    "engine": (EngineOptions, "name"),
    "spark_master": (EngineOptions, "spark_master"),
    "spark_conf": (EngineOptions, "spark_conf"),
}
"""The settings given one by one (command-line options, keywords of `custseg.run`), over the file's.

Each is the field of a table of custseg.toml (its options class and the field's name), and its
value is checked against that field's type as the file's values are.
"""


def load_settings(config_path: Path | None, **overrides: Any) -> Settings:
    """Build the settings from a custseg.toml file (optional) and command-line overrides.

    Parameters
    ----------
    config_path : Path or None
        A TOML file with optional tables ``[columns]`` (canonical = "source"), ``[input]``
        (encoding, delimiter, timestamp_format, max_invalid_share, currency), ``[clean]`` (the fields of
        `CleanRules`), ``[products]`` (the fields of `ProductOptions`), ``[rfm]`` (the fields of
        `RFMOptions`), ``[cluster]`` (the fields of `ClusterOptions`), ``[backtest]`` (the fields of
        `custseg.backtest.BacktestOptions`), ``[early]`` (the fields of
        `EarlyOptions`), ``[value]`` (the fields of `custseg.value.ValueOptions`), ``[engine]``
        (the fields of `custseg.engine.EngineOptions`; ``spark_conf``
        a table of Spark settings) and ``[run]`` (seed, as_of, memory_limit).
    **overrides
        `OVERRIDES`: ``column_map`` (a dict, canonical name to source column), ``encoding``,
        ``delimiter``, ``timestamp_format``, ``table``, ``query``, ``currency``, ``seed``, ``as_of``, ``rfm_bins``,
        ``rfm_map``, ``memory_limit``, ``category_map`` (a path), ``model``, ``n_segments``, ``recipe``, ``engine``,
        ``spark_master``, ``spark_conf`` (a dict of texts, merged over the file's); None means "not
        given", and a given value wins over the file. NumPy numbers are read as Python's.

    Raises
    ------
    ConfigError
        If the file cannot be parsed or holds unknown keys, or a value (in the file or given) is not
        of its setting's type or range.
    TypeError
        For an override that is not one of `OVERRIDES`.
    """
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(OVERRIDES)}")
    overrides = _checked_overrides(overrides)
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


def _checked_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the given overrides as the file would hold them, each checked against its field's type.

    The check comes before the file is read, so that a message about a given value does not name the file.
    """
    checked = {}
    for name, given in overrides.items():
        if given is None:
            continue
        value = _as_toml(given)
        target, key = OVERRIDES[name]
        hint = typing.get_type_hints(target)[key]
        if not _has_type(value, hint):
            raise ConfigError(f"{name}={given!r} must be {_type_words(hint)}")
        checked[name] = value
    return checked


def _as_toml(value: Any) -> Any:
    """Return a value given in Python as TOML would give it: a path as text, a NumPy number as Python's."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _settings_from(doc: dict[str, Any], where: str, overrides: dict[str, Any]) -> Settings:

    def table(name: str, cls: type, given: dict[str, Any]) -> dict[str, Any]:
        """Check the keys of table ``name`` against ``cls``; put the overrides of ``cls``'s fields over them."""
        checked = _known_keys(given, cls, f"{where} [{name}]")
        for override, (target, key) in OVERRIDES.items():
            if target is cls and override in overrides:
                value = overrides[override]
                # A mapping given one by one (column_map, spark_conf) adds to the file's.
                checked[key] = {**checked.get(key, {}), **value} if isinstance(value, dict) else value
        return checked

    column_map = {str(k): str(v) for k, v in doc.get("columns", {}).items()}
    _check_canonical_names(column_map, f"{where} [columns]")
    input_doc = _known_keys(doc.get("input", {}), InputOptions, f"{where} [input]")
    input_doc["column_map"] = column_map  # the file's column map is its [columns] table
    input_options = InputOptions(**table("input", InputOptions, input_doc))

    clean_doc = _known_keys(doc.get("clean", {}), CleanRules, f"{where} [clean]")
    clean_rules = CleanRules(**{k: tuple(v) if isinstance(v, list) else v for k, v in clean_doc.items()})

    run_doc = table("run", _RunTable, doc.get("run", {}))
    engine_table = dict(doc.get("engine", {}))
    if isinstance(engine_table.get("spark_conf"), dict):
        # Spark reads every setting as text; TOML's `spark.executor.cores = 4` means "4".
        engine_table["spark_conf"] = {str(k): str(v) for k, v in engine_table["spark_conf"].items()}
    if run_doc.get("memory_limit") is not None:
        engine_table.setdefault("memory_limit", run_doc["memory_limit"])
    return Settings(
        input=input_options,
        clean=clean_rules,
        products=ProductOptions(**table("products", ProductOptions, doc.get("products", {}))),
        rfm=RFMOptions(**table("rfm", RFMOptions, doc.get("rfm", {}))),
        cluster=ClusterOptions(**table("cluster", ClusterOptions, doc.get("cluster", {}))),
        backtest=BacktestOptions(**table("backtest", BacktestOptions, doc.get("backtest", {}))),
        early=EarlyOptions(**table("early", EarlyOptions, doc.get("early", {}))),
        value=ValueOptions(**table("value", ValueOptions, doc.get("value", {}))),
        as_of=parse_as_of(run_doc.get("as_of")),
        seed=run_doc.get("seed", 0),
        engine=EngineOptions(**table("engine", EngineOptions, engine_table)),
        recipe=run_doc.get("recipe", "custseg"),
    )


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


_SINGULAR = {bool: "true or false", int: "a whole number", float: "a number", str: "a text", datetime.date: "a date"}


def _type_words(hint: Any) -> str:
    """Say what a field's annotation asks for (None is left out: it is how a setting is not given)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_words(arg) for arg in args if arg is not type(None))
    if origin in (list, tuple):
        return f"a list of {_PLURAL.get(args[0], 'values')}" if args else "a list"
    if origin is dict or hint is dict:
        return f"a table of {_PLURAL.get(args[1], 'values')}" if args else "a table"
    return _SINGULAR.get(hint, getattr(hint, "__name__", str(hint)))


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
