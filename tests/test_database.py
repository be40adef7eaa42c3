"""A PostgreSQL database as the input, against a real server started for the tests (conftest.postgres_server)."""

from __future__ import annotations

import io
import json
import secrets
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import TEST_DATA, in_terminal
from custseg.cli import app
from custseg.database import connection_settings, read_database, redacted
from custseg.engine import DuckDBEngine, EngineOptions
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


@pytest.fixture
def victim(small_shop_table, monkeypatch):
    """The server with a table, a sequence and a function that adds a row, for queries that try to write."""
    server = small_shop_table
    monkeypatch.setenv("PGPASSWORD", server.password)
    with server.connect() as con:
        con.execute("DROP TABLE IF EXISTS victim, victim_copy")
        con.execute("DROP SEQUENCE IF EXISTS victim_ids")
        con.execute("CREATE TABLE victim (note text)")
        con.execute("INSERT INTO victim VALUES ('untouched')")
        con.execute("CREATE SEQUENCE victim_ids")
        con.execute(
            "CREATE OR REPLACE FUNCTION add_victim() RETURNS boolean LANGUAGE sql "
            "AS $$ INSERT INTO victim VALUES ('added') RETURNING true $$"
        )
    return server


def assert_untouched(server) -> None:
    """The victim table is there with its one row, nothing was copied out of it, its sequence never moved."""
    with server.connect() as con:
        assert con.execute("SELECT note FROM victim").fetchall() == [("untouched",)]
        assert con.execute("SELECT to_regclass('victim_copy')").fetchone() == (None,)
        assert con.execute("SELECT is_called FROM victim_ids").fetchone() == (False,)


NOT_ONE_SELECT = " (--query takes one SELECT statement; custseg never changes the database)"
NOT_A_SELECT = "it is not a SELECT that only reads" + NOT_ONE_SELECT
SEVERAL = "cannot insert multiple commands into a prepared statement" + NOT_ONE_SELECT
READ_ONLY = " (custseg never changes the database: nothing was changed)"
MARKER = Path(tempfile.gettempdir()) / f"custseg-copy-{secrets.token_hex(6)}"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        pytest.param("select * from small_shop; drop table victim", SEVERAL, id="drop"),
        pytest.param("select * from small_shop;\n\ndrop table victim;", SEVERAL, id="drop-on-its-line"),
        # A query written to close the parenthesis custseg puts around it does not parse on its own.
        pytest.param(
            "select 1) as q; commit; drop table victim; select * from (select 1",
            'syntax error at or near ")"' + NOT_ONE_SELECT,
            id="escaped-parenthesis",
        ),
        pytest.param("delete from victim returning *", NOT_A_SELECT, id="delete-returning"),
        pytest.param(
            "with added as (insert into victim values ('added') returning *) select * from small_shop",
            NOT_A_SELECT,
            id="cte-insert",
        ),
        pytest.param("select * into victim_copy from small_shop", NOT_A_SELECT, id="select-into"),
        pytest.param("copy victim from stdin", NOT_A_SELECT, id="copy-from"),
        pytest.param(f"copy (select 1) to program 'touch {MARKER}'", NOT_A_SELECT, id="copy-to-program"),
        pytest.param(
            "select * from small_shop where add_victim()",
            "cannot execute INSERT in a read-only transaction" + READ_ONLY,
            id="function-insert",
        ),
        pytest.param(
            "select * from small_shop where nextval('victim_ids') > 0",
            "cannot execute nextval() in a read-only transaction" + READ_ONLY,
            id="nextval",
        ),
    ],
)
def test_a_query_that_would_change_the_database_is_refused_in_one_line_and_changes_nothing(
    victim, tmp_path, query, reason
):
    result = invoke("run", victim.url(), "--query", query, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output == f"custseg: error: {victim.url()}: cannot read the query: {reason}\n"
    assert_untouched(victim)
    assert not MARKER.exists()
    assert not (tmp_path / "out").exists()


def test_a_refused_query_prints_one_line_and_no_traceback_in_a_terminal(victim, tmp_path):
    run = in_terminal("run", victim.url(), "--query", "select * from small_shop; drop table victim", cwd=tmp_path)
    assert run.exit_code == 1
    # The progress line Rich drew on the terminal comes first; the error is the last line, alone.
    assert "Traceback" not in run.output
    last = run.output.strip().splitlines()[-1].strip()
    assert last == f"custseg: error: {victim.url()}: cannot read the query: {SEVERAL}"
    assert_untouched(victim)


def test_a_syntax_error_is_the_servers_message(victim, tmp_path):
    result = invoke("run", victim.url(), "--query", "selec * from small_shop", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output == (
        f'custseg: error: {victim.url()}: cannot read the query: syntax error at or near "selec"{NOT_ONE_SELECT}\n'
    )


@pytest.fixture(scope="module")
def typed_orders(small_shop_table):
    """Orders whose ids are uuids, amounts money, times timestamptz, beside an inet column nobody reads."""
    server = small_shop_table
    with server.connect() as con:
        con.execute("DROP TABLE IF EXISTS typed_orders")
        con.execute(
            "CREATE TABLE typed_orders (customer_id uuid, invoice_id uuid, invoiced_at timestamptz, placed_on date, "
            "amount money, quantity numeric(10, 3), country varchar(30), seen_from inet)"
        )
        con.execute(
            "INSERT INTO typed_orders VALUES "
            "('8a2c0f3e-58b1-4c1e-9d8e-5c7b9a0e1f21', '0c9d7a6b-1111-4c1e-9d8e-000000000001', "
            "'2024-03-01 10:30:00+02', '2024-03-01', '$1,234.50', 2.5, 'France', '10.0.0.1'), "
            "('5b1e7d2c-0a4f-4e8b-b3c6-7f9a1d2e3c45', NULL, '2024-03-02 23:15:00-05', NULL, '-$3.00', -1, NULL, NULL)"
        )
    return server


def read(server, monkeypatch, *, table=None, query=None, column_map=None):
    monkeypatch.setenv("PGPASSWORD", server.password)
    return read_database(server.url(), DuckDBEngine(EngineOptions()), table=table, query=query, column_map=column_map)


def test_uuid_ids_are_text_money_a_number_and_timestamptz_utc(typed_orders, monkeypatch):
    source = read(typed_orders, monkeypatch, table="typed_orders")
    assert source.columns == [
        "customer_id", "invoice_id", "invoiced_at", "placed_on", "amount", "quantity", "country", "seen_from"
    ]
    assert source.arrow.sort_by("__custseg_row").to_pylist() == [
        {
            "customer_id": "8a2c0f3e-58b1-4c1e-9d8e-5c7b9a0e1f21",
            "invoice_id": "0c9d7a6b-1111-4c1e-9d8e-000000000001",
            "invoiced_at": datetime(2024, 3, 1, 8, 30),
            "quantity": 2.5,
            "amount": 1234.5,
            "country": "France",
            "__custseg_row": 1,
        },
        {
            "customer_id": "5b1e7d2c-0a4f-4e8b-b3c6-7f9a1d2e3c45",
            "invoice_id": None,
            "invoiced_at": datetime(2024, 3, 3, 4, 15),
            "quantity": -1.0,
            "amount": -3.0,
            "country": None,
            "__custseg_row": 2,
        },
    ]
    # A date is a timestamp at midnight.
    dated = read(typed_orders, monkeypatch, table="typed_orders", column_map={"invoiced_at": "placed_on"})
    assert dated.arrow.column("placed_on").to_pylist() == [datetime(2024, 3, 1), None]
    # A timestamp Python cannot hold is an invalid one, as an unreadable timestamp in a file is.
    query = "select customer_id, 'infinity'::timestamptz as invoiced_at, amount from typed_orders"
    endless = read(typed_orders, monkeypatch, query=query)
    assert endless.arrow.column("invoiced_at").to_pylist() == [None, None]


def test_the_query_runs_in_a_read_only_transaction(typed_orders, monkeypatch):
    query = (
        "select customer_id, invoiced_at, amount, current_setting('transaction_read_only') as country "
        "from typed_orders where country like '%' order by invoiced_at;  "
    )
    source = read(typed_orders, monkeypatch, query=query)
    assert source.arrow.column("country").to_pylist() == ["on"]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        (
            "select customer_id, invoiced_at, amount, interval '2 days' as quantity from typed_orders",
            "column 'quantity' is of type interval, which custseg cannot read as a number; convert it in a "
            '--query (select ..., CAST("quantity" AS numeric) AS "quantity")',
        ),
        (
            "select customer_id, invoiced_at::time as invoiced_at, amount from typed_orders",
            "column 'invoiced_at' is of type time without time zone, which custseg cannot read as a timestamp; "
            'convert it in a --query (select ..., CAST("invoiced_at" AS timestamp) AS "invoiced_at")',
        ),
        (
            "select *, 'Spain' as country from typed_orders",
            "column 'country' appears more than once (columns 7, 9); give each column its own name",
        ),
    ],
    ids=["interval-quantity", "time-of-day", "repeated-column"],
)
def test_a_column_custseg_reads_in_a_type_it_cannot_read_is_named(typed_orders, monkeypatch, tmp_path, query, problem):
    monkeypatch.setenv("PGPASSWORD", typed_orders.password)
    result = invoke("run", typed_orders.url(), "--query", query, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output == f"custseg: error: {typed_orders.url()} the query: {problem}\n"


def test_columns_custseg_does_not_read_are_not_fetched(small_shop_table, monkeypatch, tmp_path):
    server = small_shop_table
    with server.connect() as con:
        con.execute("DROP TABLE IF EXISTS shop_extra")
        con.execute(
            "CREATE TABLE shop_extra AS SELECT gen_random_uuid() AS ref, s.*, inet '10.0.0.1' AS seen_from, "
            "1.5::money AS fee, ARRAY[1, 2] AS tags FROM small_shop AS s ORDER BY s.ctid"
        )
    extra = read(server, monkeypatch, table="shop_extra")
    plain = read(server, monkeypatch, table="small_shop")
    assert extra.columns == ["ref", *plain.columns, "seen_from", "fee", "tags"]
    assert extra.arrow.equals(plain.arrow)
    # Repeated, unreadable columns do not matter either when nobody reads them.
    repeated = read(server, monkeypatch, query="select *, ref, seen_from from shop_extra order by ref")
    assert repeated.arrow.num_rows == plain.arrow.num_rows
    result = invoke("run", server.url(), "--table", "shop_extra", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert read_record(tmp_path / "out").input.columns == extra.columns


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
