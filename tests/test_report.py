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
    # The brief first, then the segments in depth, the evidence, and the data and the method last.
    assert sections_of(html) == [
        "brief",
        "learned",
        "actions",
        "interests",
        "rfm",
        "value",
        "backtest",
        "movement",
        "early",
        "products",
        "exploration",
        "quality",
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
    # Links go to the report's own sections or to the run's lists beside it, which exist.
    outside = [link for link in parser.links if not link.startswith("#")]
    assert parser.links and all(link.startswith("lists/") for link in outside), outside
    assert outside and all((report.parent / link).is_file() for link in outside)
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
    assert sections_of(html) == ["rfm", "products", "exploration", "quality"]


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


# -- charts a person can read ---------------------------------------------------------------------

NUMBER = re.compile(r"[−+-]?[\d,.]+[%kMGB]?|\d{4}-\d{2}(-\d{2})?")
"""A tick that is a number, a share or a date: no name it could stand for."""


def _plain(text: str) -> str:
    return " ".join(text.replace("<br>", " ").split())


def _overlap(a: dict, b: dict, slack: float = 0.5) -> bool:
    return (
        a["left"] < b["right"] - slack
        and b["left"] < a["right"] - slack
        and a["top"] < b["bottom"] - slack
        and b["top"] < a["bottom"] - slack
    )


def legend_problems(chart: dict) -> list[str]:
    """Say where a chart's legend covers its plot area, a tick label, a subplot title or a colour bar."""
    legend = chart["legend"]
    if legend is None:
        return []
    covered = [("plot area", area) for area in chart["plot_areas"]]
    covered += [(f"tick label {tick['text']!r}", tick) for tick in chart["ticks"]]
    covered += [("title or colour bar", label) for label in chart["labels"]]
    return [f"{chart['id']}: the legend covers the {what}" for what, box in covered if _overlap(legend, box)]


def cut_label_problems(chart: dict, names: set[str]) -> list[str]:
    """Say which tick labels are cut: an ellipsis, the start of a longer name (not its id), or outside the chart."""
    problems, svg = [], chart["svg"]
    for tick in chart["ticks"]:
        text = tick["text"]
        if text.endswith(("…", "...")):
            problems.append(f"{chart['id']}: tick label {text!r} ends with an ellipsis")
        elif not NUMBER.fullmatch(text) and text not in names:
            cut = [name for name in names if name.startswith(text) and text != name.split(" ")[0]]
            if cut:
                problems.append(f"{chart['id']}: tick label {text!r} is cut from {cut[0]!r}")
        if (
            tick["left"] < svg["left"] - 1
            or tick["right"] > svg["right"] + 1
            or tick["top"] < svg["top"] - 1
            or tick["bottom"] > svg["bottom"] + 1
        ):
            problems.append(f"{chart['id']}: tick label {text!r} runs out of the chart")
    return problems


def _colour(value: str) -> str:
    found = re.fullmatch(r"rgba?\((\d+),\s*(\d+),\s*(\d+).*\)", value.strip())
    return "#{:02x}{:02x}{:02x}".format(*map(int, found.groups())) if found else value.strip().lower()


def segment_colours(chart: dict, learned: set[str], rfm: set[str]) -> list[tuple[str, str]]:
    """List each (segment, colour) a chart draws: named traces, bars coloured one by one, tiles, Sankey nodes."""

    def segment_of(text) -> str | None:
        text = _plain(str(text))
        found = re.match(r"(S\d+)(?: |$)", text)
        if found and found.group(1) in learned:
            return found.group(1)
        return text if text in rfm else None

    drawn = []
    for trace in chart["traces"]:
        if trace["type"] == "sankey":
            labels, colours = trace["node_labels"] or [], trace["node_colors"]
        elif trace["type"] == "treemap":
            labels, colours = trace["labels"] or [], trace["colors"]
        elif isinstance(trace["color"], list):
            labels, colours = (trace["y"] if trace["orientation"] == "h" else trace["x"]) or [], trace["color"]
        else:
            labels, colours = [trace["name"]], trace["color"]
        if isinstance(colours, str):
            colours = [colours] * len(labels)
        for label, colour in zip(labels, colours or [], strict=False):
            segment = segment_of(label) if label is not None else None
            if segment and isinstance(colour, str):
                drawn.append((segment, _colour(colour)))
    return drawn


def colour_problems(charts: list[dict], learned: set[str], rfm: set[str]) -> list[str]:
    """Say which segments are drawn in more than one colour, and which charts colour two segments alike."""
    seen: dict[str, dict[str, set[str]]] = {}
    alike = []
    for chart in charts:
        drawn = set(segment_colours(chart, learned, rfm))
        for segment, colour in drawn:
            seen.setdefault(segment, {}).setdefault(colour, set()).add(chart["id"])
        for kind in (learned, rfm):
            by_colour: dict[str, set[str]] = {}
            for segment, colour in drawn:
                if segment in kind:
                    by_colour.setdefault(colour, set()).add(segment)
            alike += [
                f"{chart['id']}: {' and '.join(sorted(segments))} are both {colour}"
                for colour, segments in sorted(by_colour.items())
                if len(segments) > 1
            ]
    return alike + [
        f"segment {segment} is drawn in {len(colours)} colours: "
        + "; ".join(f"{colour} in {', '.join(sorted(ids))}" for colour, ids in sorted(colours.items()))
        for segment, colours in sorted(seen.items())
        if len(colours) > 1
    ]


def names_in(record) -> tuple[set[str], set[str], set[str]]:
    """Return a run's learned segment ids, its RFM segment names and every name a chart may stand for."""
    from custseg.record import InterestsSection, ProductsSection, SegmentsSection
    from custseg.report.charts import segment_label

    learned = (
        {p["segment"]: p["name"] for p in record.segments.profiles}
        if isinstance(record.segments, SegmentsSection)
        else {}
    )
    rfm = {s.segment for s in record.rfm.segments}
    names = {segment_label(s, n) for s, n in learned.items()} | rfm
    if isinstance(record.products, ProductsSection):
        names |= {f"{c.category} {c.label}" for c in record.products.categories}
    if isinstance(record.interests, InterestsSection):
        names |= {f"{g['interest_group']} {g['interest_group_name']}" for g in record.interests.groups}
    return set(learned), rfm, {_plain(name) for name in names}


@pytest.mark.parametrize("width", [1400, 800])
def test_every_chart_can_be_read_in_chromium(report, trained, width):
    """Check that no legend covers a plot or a label, no tick label is cut and each segment keeps one colour."""
    from conftest import charts_as_drawn

    charts = charts_as_drawn(report, width)
    learned, rfm, names = names_in(trained[1].record)
    problems = [problem for chart in charts for problem in legend_problems(chart) + cut_label_problems(chart, names)]
    problems = list(dict.fromkeys(problems)) + colour_problems(charts, learned, rfm)
    assert problems == [], "\n".join(problems)
    # The colour check looked at something: the best segments are drawn in several charts.
    coloured = [{segment for segment, _ in segment_colours(chart, learned, rfm)} for chart in charts]
    assert sum("S1" in found for found in coloured) >= 5 and sum("Champions" in found for found in coloured) >= 2


def test_the_chart_checks_see_a_legend_over_a_plot_a_cut_label_and_a_segment_in_two_colours(tmp_path):
    """Draw charts wrong on purpose, as the report drew them before, and see each check name what it sees."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    from conftest import charts_as_drawn

    full = "S3 Active occasional buyers (higher spenders)"
    wrong = {
        "legend-on-data": go.Figure(
            [go.Scatter(x=[1, 2, 3], y=[1, 3, 2], name="S1 Champions", line={"color": "#08519c"})],
            {"legend": {"x": 0.4, "y": 0.6}, "showlegend": True},
        ),
        "legend-on-ticks": go.Figure(
            [go.Bar(x=["S1 Champions", full], y=[3, 2], name="customers"), go.Bar(x=["S1 Champions"], y=[1])],
            {"legend": {"orientation": "h", "y": -0.02, "yanchor": "top"}},
        ),
        "cut": go.Figure(go.Heatmap(z=[[1, 2], [3, 4]], x=["S1", "S3"], y=["S1 Champions", full[:32]])),
        "ellipsis-outside": go.Figure(
            go.Bar(x=[1], y=["Very long category name that needs room…"], orientation="h"),
            {"margin": {"l": 5}, "yaxis": {"automargin": False}},
        ),
        "other-colour": go.Figure(go.Bar(x=["S1", "S3"], y=[1, 2], marker_color=["#d62728", "#1b9e77"])),
        "same-colour": go.Figure(
            go.Treemap(labels=["Champions", "Lost"], parents=["", ""], values=[2, 1], marker_colors=["#1f77b4"] * 2)
        ),
    }
    html = "".join(
        figure.update_layout(width=700, height=400).to_html(full_html=False, include_plotlyjs=False, div_id=key)
        for key, figure in wrong.items()
    )
    page = tmp_path / "wrong.html"
    page.write_text(
        f"<html><head><script>{get_plotlyjs()}</script></head><body>{html}<script>window.addEventListener("
        "'load', () => { document.body.dataset.renderedMs = '1'; });</script></body></html>",
        encoding="utf-8",
    )
    charts = {chart["id"]: chart for chart in charts_as_drawn(page, 1000)}
    names = {"S1 Champions", full}
    assert legend_problems(charts["legend-on-data"]) == ["legend-on-data: the legend covers the plot area"]
    assert any("covers the tick label" in problem for problem in legend_problems(charts["legend-on-ticks"]))
    assert cut_label_problems(charts["cut"], names) == [f"cut: tick label {full[:32]!r} is cut from {full!r}"]
    assert cut_label_problems(charts["ellipsis-outside"], names) == [
        "ellipsis-outside: tick label 'Very long category name that needs room…' ends with an ellipsis",
        "ellipsis-outside: tick label 'Very long category name that needs room…' runs out of the chart",
    ]
    assert colour_problems(list(charts.values()), {"S1", "S3"}, {"Champions", "Lost"}) == [
        "same-colour: Champions and Lost are both #1f77b4",
        "segment S1 is drawn in 2 colours: #08519c in legend-on-data; #d62728 in other-colour",
    ]
