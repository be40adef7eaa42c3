"""A PostgreSQL database as the input, against a real server started for the tests (conftest.postgres_server)."""

from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import TEST_DATA
from custseg.cli import app
from custseg.database import connection_settings, redacted
from custseg.errors import ConfigError
from custseg.record import read_record

runner = CliRunner()

SQL_TYPES = {"string": "text", "large_string": "text", "int64": "bigint", "double": "double precision"}


def load_table(server, name: str, table: pa.Table) -> None:
    """Create ``name`` on the server and fill it with ``table`` in its row order (COPY)."""
    columns = ", ".join(
        f'"{field.name}" ' + ("timestamp" if pa.types.is_timestamp(field.type) else SQL_TYPES[str(field.type)])
        for field in table.schema
    )
    body = io.BytesIO()
    pa_csv.write_csv(table, body)
    with server.connect() as con:
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
        con.execute(f'CREATE TABLE "{name}" ({columns})')
        with con.cursor().copy(f'COPY "{name}" FROM STDIN WITH (FORMAT csv, HEADER true)') as copy:
            copy.write(body.getvalue())


@pytest.fixture(scope="module")
def small_shop_table(postgres_server):
    shop = pa_csv.read_csv(
        TEST_DATA / "small_shop.csv", convert_options=pa_csv.ConvertOptions(strings_can_be_null=True)
    )
    load_table(postgres_server, "small_shop", shop)
    return postgres_server


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_table_is_read_with_the_password_from_the_environment(small_shop_table, monkeypatch, tmp_path):
    server = small_shop_table
    monkeypatch.setenv("PGPASSWORD", server.password)
    from_database = invoke("run", server.url(), "--table", "small_shop", "--out", tmp_path / "db")
    assert from_database.exit_code == 0, from_database.output
    from_file = invoke("run", TEST_DATA / "small_shop.csv", "--out", tmp_path / "file")
    assert from_file.exit_code == 0, from_file.output
    db, file = json.loads(from_database.stdout), json.loads(from_file.stdout)
    assert db["rows"] == file["rows"]
    assert db["reconciliation"] == file["reconciliation"]
    record = read_record(tmp_path / "db")
    assert record.input.format == "postgresql"
    assert record.input.preset == "uci_online_retail"
    assert server.password not in (tmp_path / "db" / "run.json").read_text()
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "db" / "customers.parquet"), pd.read_parquet(tmp_path / "file" / "customers.parquet")
    )
    # custseg assign reads the database the same way.
    assigned = invoke(
        "assign", server.url(), "--table", "small_shop", "--model", tmp_path / "db", "--out", tmp_path / "a.parquet"
    )
    assert assigned.exit_code == 0, assigned.output
    assert json.loads(assigned.stdout)["customers"] == db["customers"]["count"]


def test_a_pgpass_file_gives_the_password(small_shop_table, monkeypatch, tmp_path):
    server = small_shop_table
    monkeypatch.delenv("PGPASSWORD", raising=False)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{server.host}:{server.port}:*:{server.user}:{server.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    query = "select * from small_shop where \"Country\" = 'United Kingdom'"
    result = invoke("run", server.url(), "--query", query, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert read_record(tmp_path / "out").settings["input"]["query"] == query
    assert set(pd.read_parquet(tmp_path / "out" / "customers.parquet").main_country.dropna()) == {"United Kingdom"}


def test_without_a_password_the_error_is_one_line_and_says_where_it_goes(small_shop_table, monkeypatch, tmp_path):
    server = small_shop_table
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    result = invoke("run", server.url(), "--table", "small_shop", "--out", tmp_path / "out")
    assert result.exit_code != 0
    message = result.output.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"custseg: error: {server.url()}: cannot connect:")
    assert "PGPASSWORD" in message


def test_a_missing_table_is_named(small_shop_table, monkeypatch, tmp_path):
    server = small_shop_table
    monkeypatch.setenv("PGPASSWORD", server.password)
    result = invoke("run", server.url(), "--table", "no_such_orders", "--out", tmp_path / "out")
    assert result.exit_code != 0
    message = result.output.strip()
    assert "\n" not in message
    assert "cannot read table 'no_such_orders'" in message and "no_such_orders" in message


def test_a_password_in_the_url_is_refused_and_not_repeated(tmp_path):
    result = invoke("run", "postgresql://shop:hunter2@db.example:5432/shop", "--table", "orders", "--out", tmp_path)
    assert result.exit_code != 0
    assert "hunter2" not in result.output
    assert "PGPASSWORD" in result.output
    assert redacted("postgresql://shop:hunter2@db:5432/shop") == "postgresql://shop:***@db:5432/shop"


def test_connection_settings_come_from_the_url():
    assert connection_settings("postgresql://ana@db.example:6543/shop?sslmode=require") == {
        "host": "db.example",
        "database": "shop",
        "user": "ana",
        "port": 6543,
        "sslmode": "require",
    }
    with pytest.raises(ConfigError, match="names no database"):
        connection_settings("postgresql://ana@db.example")


def test_table_and_query_belong_to_a_database(tmp_path):
    result = invoke("run", TEST_DATA / "small_shop.csv", "--table", "orders", "--out", tmp_path)
    assert result.exit_code != 0
    assert "--table and --query read a database" in result.output
    both = invoke("run", "postgresql://ana@localhost/shop", "--out", tmp_path)
    assert both.exit_code != 0 and "--table NAME or --query" in both.output


@pytest.mark.realdata
def test_the_uci_file_in_a_database_gives_the_same_customers_segments_and_reconciliation(
    postgres_server, shared_data, uci_run, monkeypatch, tmp_path
):
    load_table(postgres_server, "online_retail", pq.read_table(shared_data / "online_retail.parquet"))
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    result = invoke("run", postgres_server.url(), "--table", "online_retail", "--out", tmp_path / "db")
    assert result.exit_code == 0, result.output
    db, parquet = read_record(tmp_path / "db"), read_record(uci_run.out_dir)
    assert db.rows == parquet.rows
    assert db.reconciliation == parquet.reconciliation
    key = "customer_id"
    customers_db = pd.read_parquet(tmp_path / "db" / "customers.parquet").sort_values(key, ignore_index=True)
    customers_file = pd.read_parquet(uci_run.out_dir / "customers.parquet").sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(customers_db, customers_file)
    assert (tmp_path / "db" / "segments.csv").read_text() == (uci_run.out_dir / "segments.csv").read_text()
