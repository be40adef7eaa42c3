"""Settings from custseg.toml and the command line: the [engine] table."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import numpy as np
import pytest

from custseg.backtest import BacktestOptions
from custseg.clean import CleanRules
from custseg.cluster import ClusterOptions
from custseg.early import EarlyOptions
from custseg.engine import EngineOptions
from custseg.errors import ConfigError, RenamedSettingWarning
from custseg.products import ProductOptions
from custseg.rfm import RFMOptions
from custseg.settings import OVERRIDES, InputOptions, Settings, _RunTable, load_settings, settings_from_dict
from custseg.value import ValueOptions


def test_engine_table_and_overrides(tmp_path):
    config = tmp_path / "custseg.toml"
    config.write_text(
        '[engine]\nname = "spark"\nspark_master = "spark://m:7077"\n'
        'spark_conf = { "spark.executor.memory" = "8g" }\n[run]\nmemory_limit = "2GB"\n'
    )
    engine = load_settings(config).engine
    assert (engine.name, engine.spark_master, engine.memory_limit) == ("spark", "spark://m:7077", "2GB")
    assert engine.spark_conf == {"spark.executor.memory": "8g"}

    overridden = load_settings(
        config, engine="duckdb", spark_conf={"spark.driver.memory": "4g"}, memory_limit="3GB"
    ).engine
    assert (overridden.name, overridden.memory_limit) == ("duckdb", "3GB")
    assert overridden.spark_conf == {"spark.executor.memory": "8g", "spark.driver.memory": "4g"}


def test_engine_settings_survive_the_model_manifest(tmp_path):
    config = tmp_path / "custseg.toml"
    config.write_text('[engine]\nname = "spark"\nspark_conf = { "spark.sql.shuffle.partitions" = "8" }\n')
    settings = load_settings(config)
    assert settings_from_dict(settings.to_dict()) == settings


def test_unknown_engine_keys_are_refused(tmp_path):
    config = tmp_path / "custseg.toml"
    config.write_text('[engine]\nmaster = "local[2]"\n')
    with pytest.raises(ConfigError, match=r"\[engine\]: unknown key\(s\) master"):
        load_settings(config)


def test_backtest_and_cluster_tables(tmp_path):
    config = tmp_path / "custseg.toml"
    config.write_text(
        '[backtest]\nhorizon_days = 60\nfolds = 3\n[cluster]\nparsimony = 0.05\nmodels = ["tiers"]\n'
        'spaces = ["predicted"]\n'
    )
    settings = load_settings(config)
    assert (settings.backtest.horizon_days, settings.backtest.folds) == (60, 3)
    assert settings.cluster.parsimony == 0.05 and settings.cluster.models == ["tiers"]
    assert settings_from_dict(settings.to_dict()) == settings
    config.write_text("[backtest]\nfolds = 1\n")
    with pytest.raises(ConfigError, match=r"\[backtest\]: horizon_days and bootstrap must be at least 1"):
        load_settings(config)
    with pytest.raises(ConfigError, match="n_segments=1 must be at least 2"):
        load_settings(None, n_segments=1)


def test_tables_under_their_earlier_names_are_read_with_a_warning(tmp_path):
    config = tmp_path / "custseg.toml"
    config.write_text("[validation]\nhorizon_days = 60\n[predict]\nmax_orders = 2\n")
    with pytest.warns(RenamedSettingWarning) as warned:
        settings = load_settings(config)
    assert (settings.backtest.horizon_days, settings.early.max_orders) == (60, 2)
    assert [str(w.message) for w in warned] == [
        f"{config}: [validation] is now called [backtest]; read as [backtest] (rename it to silence this)",
        f"{config}: [predict] is now called [early]; read as [early] (rename it to silence this)",
    ]
    config.write_text("[validation]\nhorizon_days = 60\n[backtest]\nhorizon_days = 30\n")
    with pytest.raises(ConfigError, match=r"\[validation\] and \[backtest\] are the same table"):
        load_settings(config)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ClusterOptions(n_segments=1), "n_segments=1 must be at least 2"),
        (lambda: ClusterOptions(min_segments=6, max_segments=3), r"\[cluster\] min_segments=6 and max_segments=3"),
        (lambda: ProductOptions(min_categories=0), r"\[products\] min_categories=0 and max_categories=40"),
        (lambda: BacktestOptions(folds=1), r"\[backtest\]: horizon_days and bootstrap must be at least 1"),
        (lambda: EarlyOptions(test_share=1.5), r"\[early\]: horizon_days and max_orders must be at least 1"),
        (lambda: RFMOptions(segment_map="x"), "segment_map='x' must be one of rfm, rf_grid, custom"),
        (lambda: Settings(seed=-1), "seed=-1 must be a whole number, at least 0"),
        (lambda: Settings(recipe="notebook"), "recipe='notebook' must be custseg or course"),
    ],
)
def test_each_options_class_checks_its_own_values(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_a_bad_value_in_the_file_names_the_file(tmp_path):
    config = tmp_path / "custseg.toml"
    config.write_text("[products]\nmin_categories = 9\nmax_categories = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == (
        f"{config}: [products] min_categories=9 and max_categories=3 must satisfy 1 <= min <= max"
    )


TABLES = {
    "input": InputOptions,
    "clean": CleanRules,
    "products": ProductOptions,
    "rfm": RFMOptions,
    "cluster": ClusterOptions,
    "backtest": BacktestOptions,
    "early": EarlyOptions,
    "value": ValueOptions,
    "engine": EngineOptions,
    "run": _RunTable,
}
NO_SETTING_TAKES = datetime.time(7, 32)
"""A value of a type no setting takes (in TOML, ``07:32:00``)."""


@pytest.mark.parametrize(
    ("table", "key"), [(table, field.name) for table, cls in TABLES.items() for field in dataclasses.fields(cls)]
)
def test_every_key_of_every_table_is_checked_for_its_type(tmp_path, table, key):
    config = tmp_path / "custseg.toml"
    config.write_text(f"[{table}]\n{key} = 07:32:00\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value).startswith(f"{config} [{table}]: {key} = datetime.time(7, 32) must be ")


@pytest.mark.parametrize("name", OVERRIDES)
def test_every_setting_given_one_by_one_is_checked_for_its_type(name):
    with pytest.raises(ConfigError, match=rf"^{name}=datetime.time\(7, 32\) must be "):
        load_settings(None, **{name: NO_SETTING_TAKES})


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"n_segments": "five"}, "n_segments='five' must be a whole number"),
        ({"n_segments": 4.5}, "n_segments=4.5 must be a whole number"),
        ({"rfm_bins": True}, "rfm_bins=True must be a whole number"),
        ({"seed": "1"}, "seed='1' must be a whole number"),
        ({"as_of": 20111201}, "as_of=20111201 must be a text or a date"),
        ({"model": ["kmeans"]}, "model=['kmeans'] must be a text"),
        ({"category_map": 3}, "category_map=3 must be a text"),
        ({"column_map": {"customer_id": 7}}, "column_map={'customer_id': 7} must be a table of texts"),
        (
            {"spark_conf": {"spark.executor.cores": 4}},
            "spark_conf={'spark.executor.cores': 4} must be a table of texts",
        ),
    ],
)
def test_a_given_setting_of_the_wrong_type_names_the_setting_and_value_not_the_file(tmp_path, given, message):
    config = tmp_path / "custseg.toml"
    config.write_text("[cluster]\nmin_segments = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, **given)
    assert str(caught.value) == message


def test_numpy_numbers_and_paths_are_read_as_python_values():
    settings = load_settings(None, n_segments=np.int64(5), seed=np.int32(2), category_map=Path("cats.csv"))
    assert (settings.cluster.n_segments, settings.seed, settings.products.mapping_file) == (5, 2, "cats.csv")
    assert type(settings.cluster.n_segments) is int and type(settings.seed) is int
    assert json.loads(json.dumps(settings.to_dict()))["cluster"]["n_segments"] == 5


def test_given_mappings_add_to_the_files(tmp_path):
    config = tmp_path / "custseg.toml"
    config.write_text('[columns]\ncustomer_id = "Client"\n[engine]\nspark_conf = { "spark.a" = 1 }\n')
    settings = load_settings(config, column_map={"invoice_id": "Order"}, spark_conf={"spark.b": "2"})
    assert settings.input.column_map == {"customer_id": "Client", "invoice_id": "Order"}
    assert settings.engine.spark_conf == {"spark.a": "1", "spark.b": "2"}


@pytest.mark.parametrize("given", ["pounds", "GB", "£"])
def test_a_currency_that_is_not_an_iso_code_is_refused(given):
    with pytest.raises(ConfigError, match="three-letter ISO 4217 code"):
        load_settings(None, currency=given)


def test_a_currency_given_in_lower_case_is_read_as_its_code():
    assert load_settings(None, currency="eur").input.currency == "EUR"
