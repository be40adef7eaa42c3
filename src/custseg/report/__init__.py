"""The report: one self-contained HTML file with the data's story, the segments and what to do.

Marketing people would rather look than read tables. `build_report` reads a finished output
folder (run.json and the tables in custseg.duckdb), draws every chart with Plotly, writes one
computed sentence under each saying what it shows on this data, and renders ``report.html`` with
Jinja2: plotly.js is embedded once, so the file opens offline and can be e-mailed. Each section is
a module of this package, a function of `ReportData`; `SECTIONS` lists them in reading order, and
a section whose stage did not run is left out. The terminal summary (`custseg.report.terminal`)
and the notebook view (`custseg.report.notebook`) read the same record and headline figures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ibis

from custseg import __version__
from custseg.engine import DATABASE_FILE, stored_tables
from custseg.errors import InputFileError
from custseg.record import RECORD_FILE, RunRecord, read_record
from custseg.report.actions import actions
from custseg.report.backtest import backtest
from custseg.report.brief import brief
from custseg.report.charts import Section
from custseg.report.data import ReportData, report_data
from custseg.report.early import early
from custseg.report.exploration import exploration
from custseg.report.headline import headline
from custseg.report.interests import interest_groups
from custseg.report.movement import movement
from custseg.report.products import product_categories
from custseg.report.quality import data_quality
from custseg.report.rfm import rfm
from custseg.report.segments import learned_segments
from custseg.report.value import value

REPORT_FILE = "report.html"
SECTIONS: tuple[Callable[[ReportData], Section | None], ...] = (
    brief,
    learned_segments,
    actions,
    interest_groups,
    rfm,
    value,
    backtest,
    movement,
    early,
    product_categories,
    exploration,
    data_quality,
)
"""The report's sections in reading order, each None when its stage did not run: the brief (what to do
now), the segments in depth, the evidence (what the segments and forecasts are worth on the shop's own
history), and the data and the method last."""
PARTS = (
    ("The segments in depth", ("learned", "actions", "interests", "rfm")),
    ("The evidence", ("value", "backtest", "movement", "early")),
    ("The data and the method", ("products", "exploration", "quality")),
)
"""The report's parts, each named above the first of its sections that the run has."""


def report_sections(backend: ibis.BaseBackend, record: RunRecord) -> list[Section]:
    """Build every section the run's stages allow, from its tables and its record."""
    data = report_data(backend, record)
    return [section for make in SECTIONS if (section := make(data)) is not None]


def render(record: RunRecord, sections: list[Section]) -> str:
    """Render the sections into one HTML page with plotly.js embedded once."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from plotly.offline import get_plotlyjs

    environment = Environment(loader=PackageLoader("custseg", "templates"), autoescape=select_autoescape())
    template = environment.get_template("report.html.j2")
    config = {"displaylogo": False, "responsive": True}
    charts = []
    for section in sections:
        for number, chart in enumerate(section.charts):
            chart_id = f"chart-{section.key}-{number}"
            charts.append(chart_id)
            chart.html = chart.figure.to_html(full_html=False, include_plotlyjs=False, div_id=chart_id, config=config)
    return template.render(
        record=record,
        headline=headline(record),
        sections=sections,
        parts=_part_starts(sections),
        chart_count=len(charts),
        plotlyjs=get_plotlyjs(),
        version=__version__,
    )


def _part_starts(sections: list[Section]) -> dict[str, str]:
    """Section key -> the name of the part it opens (`PARTS`): the first section of each part the run has."""
    keys = [section.key for section in sections]
    starts = {}
    for name, members in PARTS:
        first = next((key for key in keys if key in members), None)
        if first is not None:
            starts[first] = name
    return starts


def write_report(out_dir: Path, backend: ibis.BaseBackend, record: RunRecord) -> Path:
    """Write ``report.html`` into ``out_dir`` from the run's tables and record."""
    target = Path(out_dir) / REPORT_FILE
    target.write_text(render(record, report_sections(backend, record)), encoding="utf-8")
    return target


def build_report(out_dir: str | Path) -> Path:
    """Rebuild ``report.html`` of a finished output folder without recomputing anything.

    Raises
    ------
    InputFileError
        If the folder holds no finished custseg run.
    """
    record, sections = run_sections(out_dir)
    target = Path(out_dir) / REPORT_FILE
    target.write_text(render(record, sections), encoding="utf-8")
    return target


def run_sections(out_dir: str | Path) -> tuple[RunRecord, list[Section]]:
    """Build the report's sections of a finished output folder: its record and the sections.

    Raises
    ------
    InputFileError
        If the folder holds no finished custseg run.
    """
    out_dir = Path(out_dir)
    database, tables = out_dir / DATABASE_FILE, stored_tables(out_dir)
    if not (out_dir / RECORD_FILE).exists() or not (database.exists() or tables):
        raise InputFileError(f"{out_dir}: no {RECORD_FILE} and {DATABASE_FILE}; give the output folder of custseg run")
    record = read_record(out_dir)
    if record.customers is None or record.course is not None:
        raise InputFileError(f"{out_dir}: this run has no customer table (stopped early, or --recipe course)")
    if database.exists():
        backend = ibis.duckdb.connect(database, read_only=True)
    else:
        # A Spark run's tables are Parquet datasets; DuckDB reads them in place.
        backend = ibis.duckdb.connect()
        for name, folder in tables.items():
            backend.read_parquet(folder / "*.parquet", table_name=name)
    try:
        return record, report_sections(backend, record)
    finally:
        backend.disconnect()
