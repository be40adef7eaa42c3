"""Settings from custseg.toml and the command line: the [engine] table."""

from __future__ import annotations

import pytest

from custseg.backtest import BacktestOptions
from custseg.cluster import ClusterOptions
from custseg.early import EarlyOptions
from custseg.errors import ConfigError, RenamedSettingWarning
from custseg.products import ProductOptions
from custseg.rfm import RFMOptions
from custseg.settings import Settings, load_settings, settings_from_dict


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
        (lambda: ProductOptions(min_categories=1), r"\[products\] min_categories=1 and max_categories=20"),
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
        f"{config}: [products] min_categories=9 and max_categories=3 must satisfy 2 <= min <= max"
    )
