from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ibis
import pandas as pd
import pytest

from custseg.schema import ColumnMapping, to_canonical

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT.parent / "shared" / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real UCI Online Retail files; absent files fail the test, they never skip it."""
    if not (SHARED_DATA / "online_retail.parquet").exists():
        pytest.fail(f"the real data is missing: expected {SHARED_DATA}/online_retail.parquet")
    return SHARED_DATA


@pytest.fixture(scope="session")
def uci_run(shared_data, tmp_path_factory):
    """The full DuckDB run on the real Parquet file, as a person runs it: ``custseg run`` in a terminal.

    Shared by the real-data, Spark and database tests, which read its output folder; it must end
    with exit 0, no traceback, and the report's path printed (the terminal's Rich summary).
    """
    from custseg.pipeline import RunResult
    from custseg.record import read_record

    folder = tmp_path_factory.mktemp("uci")
    shown = in_terminal("run", shared_data / "online_retail.parquet", "--out", folder / "out", cwd=folder)
    assert shown.exit_code == 0 and "Traceback" not in shown.output, shown.output[-3000:]
    assert f"Report: {folder / 'out' / 'report.html'}" in shown.output, shown.output[-3000:]
    (folder / "terminal.txt").write_text(shown.output, encoding="utf-8")
    return RunResult(out_dir=folder / "out", record=read_record(folder / "out"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A model trained on a small simulated shop: (simulated files, run result)."""
    from custseg.pipeline import run
    from custseg.simulate import simulate_to_files

    folder = tmp_path_factory.mktemp("trained")
    files = simulate_to_files(folder / "shop.parquet", 800, seed=5)
    return files, run(files.log, folder / "out")


def make_transactions(rows: list[dict]) -> ibis.Table:
    """Canonical transactions from hand-written rows (canonical column names, row_id = position)."""
    defaults = {
        "customer_id": "c1",
        "invoice_id": None,
        "invoiced_at": "2011-01-01 10:00",
        "product_id": "p1",
        "description": "THING",
        "quantity": 1.0,
        "unit_price": 1.0,
        "country": "United Kingdom",
    }
    frame = pd.DataFrame([{**defaults, **row} for row in rows])
    frame["invoice_id"] = frame["invoice_id"].fillna(
        pd.Series([f"i{n}" for n in range(1, len(frame) + 1)], index=frame.index)
    )
    frame["invoiced_at"] = pd.to_datetime(frame["invoiced_at"], format="mixed")
    frame["quantity"] = frame["quantity"].astype(float)
    frame["unit_price"] = frame["unit_price"].astype(float)
    frame["row"] = range(1, len(frame) + 1)
    mapping = ColumnMapping(preset="canonical", columns={c: c for c in defaults})
    return to_canonical(ibis.memtable(frame), mapping, timestamp_format=None, row_id="row")


CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT / "test-artifacts"


def open_in_chromium(page_file: Path, screenshot: Path) -> dict:
    """Open a local HTML file in headless Chromium with the network off; report what happened.

    Returns console errors, every non-file request, the render time the page recorded, the number
    of rendered Plotly charts (one root SVG each) and the number the page says it holds.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
            page = context.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            page.wait_for_function("document.body.dataset.renderedMs !== undefined", timeout=30_000)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            return {
                "errors": errors,
                "requests": [url for url in requests if not url.startswith("file:")],
                "rendered_ms": int(page.evaluate("document.body.dataset.renderedMs")),
                "plotly_roots": page.locator(".js-plotly-plot .svg-container > svg.main-svg:first-child").count(),
                "charts": int(page.evaluate("document.body.dataset.charts")),
            }
        finally:
            browser.close()


CHARTS_AS_DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')].map(plot => {
  const box = element => { const r = element.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
  const words = text => { const lines = text.querySelectorAll('tspan.line');
    return (lines.length ? [...lines].map(line => line.textContent) : [text.textContent]).join(' ').trim(); };
  const list = value => value == null ? null : (typeof value === 'string' ? value : Array.from(value));
  const legend = plot.querySelector('.legend .bg') || plot.querySelector('.legend');
  return {
    id: plot.id,
    svg: box(plot.querySelector('.main-svg')),
    legend: legend && plot.querySelector('.legend .traces') ? box(legend) : null,
    plot_areas: [...plot.querySelectorAll('.nsewdrag')].map(box),
    labels: [...plot.querySelectorAll('.annotation, .colorbar, .g-gtitle')].map(box),
    ticks: [...plot.querySelectorAll('.xaxislayer-above text, .yaxislayer-above text')]
      .map(text => ({text: words(text), ...box(text)})).filter(tick => tick.text && tick.right > tick.left),
    traces: plot.data.map(trace => ({
      type: trace.type || 'scatter', name: trace.name == null ? null : String(trace.name),
      orientation: trace.orientation || 'v', x: list(trace.x), y: list(trace.y), labels: list(trace.labels),
      color: list((trace.marker || {}).color) || list((trace.line || {}).color),
      colors: list((trace.marker || {}).colors),
      node_labels: list((trace.node || {}).label), node_colors: list((trace.node || {}).color),
    })),
  };
})"""
"""What a person sees of every Plotly chart of a page: boxes in pixels (legend, plot areas, tick labels
with their text, subplot titles and colour bars, the chart's SVG) and the traces' names, labels and colours."""


def charts_as_drawn(page_file: Path, width: int) -> list[dict]:
    """Open a local HTML page in headless Chromium ``width`` pixels wide and measure its charts (`CHARTS_AS_DRAWN`)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = browser.new_context(viewport={"width": width, "height": 900}, offline=True).new_page()
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            page.wait_for_function("document.body.dataset.renderedMs !== undefined", timeout=30_000)
            return page.evaluate(CHARTS_AS_DRAWN)
        finally:
            browser.close()


@dataclass(frozen=True)
class PostgresServer:
    """A throwaway PostgreSQL cluster: where it listens and its one user's password."""

    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self):
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", password=self.password, autocommit=True
        )


@pytest.fixture(scope="session")
def postgres_server():
    """Start a PostgreSQL server in a temporary folder for the session (Debian's postgresql package).

    The cluster asks for a password (scram-sha-256) over TCP on 127.0.0.1, as a shop's server does.
    Missing server programs fail the tests: `make test` installs them (scripts/install-test-packages).
    """
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL's server programs are missing (Debian package postgresql); `make test` installs them")
    bin_dir = found[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="custseg-pg-"))
    # initdb refuses to run as root; Debian's package has a postgres user for the server.
    as_server_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_server_user:
        shutil.chown(folder, "postgres")
    password = secrets.token_hex(12)
    (folder / "pw").write_text(password + "\n")
    if as_server_user:
        shutil.chown(folder / "pw", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    subprocess.run(
        [*as_server_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "custseg", "--auth=scram-sha-256",
         f"--pwfile={folder / 'pw'}", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w",
         "start"],
        check=True, capture_output=True,
    )
    try:
        yield PostgresServer("127.0.0.1", port, "custseg", password)
    finally:
        subprocess.run(
            [*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class TerminalRun:
    """What a command printed in a pseudo-terminal (stdout and stderr together, as a person sees them)."""

    exit_code: int
    output: str


def in_terminal(*args: str | Path, cwd: Path, columns: int = 200, timeout: float = 1200) -> TerminalRun:
    """Run ``custseg ARGS`` in a pseudo-terminal of ``columns`` columns, as a person at a terminal does.

    Standard output is a terminal, so the command takes its Rich path (tables, progress), the one
    that piped tests never see.
    """
    import pty
    import select
    import struct
    import sys
    import termios
    import time
    from fcntl import ioctl

    leader, follower = pty.openpty()
    ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns)}
    environment.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "custseg.cli", *map(str, args)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=environment,
        close_fds=True,
    )
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        else:
            process.kill()
            pytest.fail(f"custseg {' '.join(map(str, args))} did not end within {timeout} s")
    finally:
        os.close(leader)
    exit_code = process.wait()
    text = b"".join(chunks).decode("utf-8", errors="replace")
    # Colours and cursor moves out, so that tests read the words.
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r", "", text)
    return TerminalRun(exit_code=exit_code, output=text)


@pytest.fixture(scope="session", autouse=True)
def every_run_record_matches_the_published_schema(tmp_path_factory):
    """After the session, check every run.json the tests wrote (in this process or a CLI's) against the schema.

    The schema is the one the documentation publishes (`custseg.record.json_schema`), checked with an
    independent validator. Files the tests damaged or wrote in an earlier layout on purpose (to see
    them refused) are not custseg's output and are left out.
    """
    yield
    import json

    import jsonschema

    from custseg.record import RECORD_FILE, RECORD_VERSION, json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    problems = []
    for path in sorted(tmp_path_factory.getbasetemp().rglob(RECORD_FILE)):
        try:
            written = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(written, dict) or written.get("record_version") != RECORD_VERSION:
            continue
        for error in validator.iter_errors(written):
            problems.append(f"{path}: {'.'.join(map(str, error.absolute_path))}: {error.message[:200]}")
    assert not problems, "\n".join(problems[:20])
