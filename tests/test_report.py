from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from conftest import ARTIFACTS, open_in_chromium
from custseg.cli import app
from custseg.pipeline import run
from custseg.report import REPORT_FILE, build_report


@pytest.fixture(scope="module")
def report(trained):
    return trained[1].out_dir / REPORT_FILE


def sections_of(html: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)">', html)


def test_every_run_writes_a_report_with_every_section(report):
    html = report.read_text()
    assert sections_of(html) == [
        "quality",
        "exploration",
        "products",
        "rfm",
        "learned",
        "interests",
        "backtest",
        "value",
        "movement",
        "early",
        "actions",
    ]
    assert html.count('class="reading"') == int(re.search(r'data-charts="(\d+)"', html).group(1)) > 10


class Links(HTMLParser):
    """Every src and href of the document's elements (script bodies are text, not elements)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]


def test_the_report_fetches_nothing_and_is_small(report):
    html = report.read_text()
    parser = Links()
    parser.feed(html)
    assert parser.links and all(link.startswith("#") for link in parser.links), parser.links
    assert html.count("plotly.js v") >= 1 and html.count("Plotly.newPlot") == html.count('class="chart"')
    assert report.stat().st_size < 10_000_000


def test_readings_are_computed_from_the_run(report, trained):
    html = report.read_text()
    record = trained[1].record
    rows = record.rows
    assert f"Of {rows.input_rows:,} input rows, {rows.kept_rows:,}" in html
    chosen = record.segments.chosen
    assert f"{chosen['model']} on {chosen['space']} with {chosen['n_segments']} segments" in html
    learned, rfm = record.segments.backtest, record.backtest.rfm
    assert "Do the segments predict?" in html and "Best candidates (eligible first, by backtest validity)" in html
    assert f"<td>{learned.auc:.3f}</td>" in html and f"<td>{rfm.eta_squared:.3f}</td>" in html


def test_report_command_rebuilds_the_same_file(report, tmp_path):
    before = report.read_bytes()
    outcome = CliRunner().invoke(app, ["report", str(report.parent)])
    assert outcome.exit_code == 0, outcome.output
    assert report.read_bytes() == before


def test_sections_of_stages_that_did_not_run_are_left_out(trained, tmp_path):
    files, _ = trained
    result = run(files.log, tmp_path / "early-stop", until="rfm")
    html = build_report(result.out_dir).read_text()
    assert sections_of(html) == ["quality", "exploration", "products", "rfm"]


def test_report_command_on_a_folder_without_a_run_says_so(tmp_path):
    outcome = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert outcome.exit_code == 1
    assert outcome.stderr.startswith(f"custseg: error: {tmp_path}: no run.json")


def test_the_report_renders_in_chromium(report):
    opened = open_in_chromium(report, ARTIFACTS / "report-simulated.png")
    assert opened["errors"] == [] and opened["requests"] == []
    assert opened["plotly_roots"] == opened["charts"] > 10


def test_the_forward_chart_draws_the_season_correction_only_where_a_check_reaches_a_year_back():
    import datetime

    from custseg.record.value import ForwardCheck, ForwardChecks
    from custseg.report.value import _forward_chart

    def check(day: int, factor: float | None) -> ForwardCheck:
        cut = datetime.datetime(2012, 9, day)
        return ForwardCheck(
            customers=100,
            auc=0.8,
            spearman=0.5,
            r_squared_log=0.3,
            predicted_revenue=1000.0,
            actual_revenue=500.0,
            revenue_ratio=2.0,
            trained_as_of=cut - datetime.timedelta(days=90),
            trained_on_customers=90,
            scored_as_of=cut,
            season_factor=factor,
        )

    forward = ForwardChecks(
        step_days=30,
        level=0.8,
        seasonal=True,
        cuts=[check(3, 0.5), check(2, 0.6), check(1, None)],
        shop=None,
        segments=None,
    )
    chart = _forward_chart(forward, 90)
    corrected = next(trace for trace in chart.figure.data if trace.name.startswith("forecast corrected"))
    assert list(corrected.y) == [None, 600.0, 500.0]
    assert "corrected by the season a year before each 100% to 120%" in chart.reading
