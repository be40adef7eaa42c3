"""The commands as a person runs them: in a terminal, where Rich prints tables and progress.

Piped output takes the JSON path; only a pseudo-terminal takes the path people see.
"""

from __future__ import annotations

import re

import pytest

from conftest import TEST_DATA, in_terminal
from custseg.pipeline import STAGES


def assert_clean(run, *expected: str) -> None:
    assert run.exit_code == 0, run.output
    assert "Traceback" not in run.output
    for text in expected:
        assert text in run.output, run.output


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("terminal")
    return folder, in_terminal("demo", "--out", folder / "demo", "--customers", "600", cwd=folder)


def test_demo_prints_its_summary_and_the_report_path(demo):
    folder, run = demo
    assert_clean(run, f"Report: {folder / 'demo' / 'report.html'}", "Learned segments, ", "Early prediction")


def test_the_run_shows_a_progress_bar_with_the_stage_its_number_the_time_elapsed_and_the_time_left(demo):
    _, run = demo
    # The bar is erased when the run ends, but its frames went through the terminal.
    frames = re.findall(r"(\w+) +[━╸╺]+ stage (\d+)/(\d+) \d:\d\d:\d\d (-:--:--|\d:\d\d:\d\d) left", run.output)
    shown = {name: (int(number), int(total)) for name, number, total, _ in frames}
    stages = len(STAGES)
    assert shown["read"] == (1, stages) and shown["segments"] == (STAGES.index("segments") + 1, stages), shown
    assert any(left != "-:--:--" for *_, left in frames)


def test_run_on_a_log_too_short_for_a_backtest_says_so_and_ends_cleanly(tmp_path):
    run = in_terminal("run", TEST_DATA / "small_shop.csv", "--out", tmp_path / "out", cwd=tmp_path)
    assert_clean(run, "Backtest skipped: ", f"Report: {tmp_path / 'out' / 'report.html'}")


def test_assign_report_and_compare_end_cleanly(demo, tmp_path):
    folder, _ = demo
    log = folder / "demo" / "simulated_shop.parquet"
    model = folder / "demo"
    early = in_terminal(
        "assign", log, "--model", model, "--as-of", "2011-09-11", "--out", tmp_path / "a.parquet", cwd=tmp_path
    )
    assert_clean(early, "customers as of 2011-09-11 (given with --as-of)", str(tmp_path / "a.parquet"))
    late = in_terminal("assign", log, "--model", model, "--out", tmp_path / "b.parquet", cwd=tmp_path)
    assert_clean(
        late, "as of 2011-12-10 (the day after the last transaction in these rows)", str(tmp_path / "b.parquet")
    )
    assert "Note:" not in late.output  # the model's own date: nothing to add
    compared = in_terminal("compare", tmp_path / "a.parquet", tmp_path / "b.parquet", cwd=tmp_path)
    assert_clean(compared, "(rows)", "(columns)")
    same = in_terminal("compare", tmp_path / "b.parquet", tmp_path / "b.parquet", cwd=tmp_path)
    assert_clean(same, "were in the same segment")
    report = in_terminal("report", model, cwd=tmp_path)
    assert_clean(report, f"Report: {model / 'report.html'}")


def test_a_log_shorter_than_two_horizons_has_no_backtest_and_the_run_says_so(demo, tmp_path):
    folder, _ = demo
    log = folder / "demo" / "simulated_shop.parquet"
    run = in_terminal("run", log, "--as-of", "2011-04-01", "--out", tmp_path / "short", cwd=tmp_path)
    assert_clean(run, "Backtest skipped: the log covers", "Expected value skipped: no backtest")
    assigned = in_terminal("assign", log, "--model", tmp_path / "short", "--out", tmp_path / "a.csv", cwd=tmp_path)
    assert_clean(
        assigned,
        "customers as of 2011-12-10 (the day after the last transaction in these rows)",
        "new ones with an early prediction",
        "Note: the model is as of 2011-04-01: to score these customers as of the run that trained it, pass --as-of "
        "2011-04-01.",
    )


@pytest.mark.realdata
def test_the_real_data_run_prints_its_summary_in_a_terminal(uci_run):
    shown = (uci_run.out_dir.parent / "terminal.txt").read_text(encoding="utf-8")
    expected = (
        "Cleaning",
        "Revenue reconciliation",
        "RFM segments (4,",
        "Learned segments:",
        "* Backtest:",
        "Expected value (",
        "Learned segments, 2011-09-11 to 2011-12-10:",
        "Early prediction",
        # The brief comes last, where a terminal leaves the reader; the UCI file's amounts are pounds.
        "Revenue reconciliation (GBP)",
        "Follow the learned segments",
        "What to do now",
        "worth (GBP)",
        "Their lists, to load into an email tool,",
    )
    for text in expected:
        assert text in shown, text
    assert re.search(r"£[0-9]{1,3}(,[0-9]{3})+", shown)
    assert shown.index("What to do now") > shown.index("Early prediction")
    for listed in (uci_run.out_dir / "lists").glob("*.csv"):
        assert "Expected Revenue 90 Days (GBP)" in listed.read_text(encoding="utf-8").splitlines()[0]
        # Every list is named, those outside the brief's table too.
        assert listed.name in shown, listed.name
    assert "£" in (uci_run.out_dir / "report.html").read_text(encoding="utf-8")


@pytest.mark.realdata
def test_assign_compare_and_report_end_cleanly_on_the_real_data(uci_run, shared_data, tmp_path):
    data = shared_data / "online_retail.parquet"
    early = in_terminal(
        "assign",
        data,
        "--model",
        uci_run.out_dir,
        "--as-of",
        "2011-09-11",
        "--out",
        tmp_path / "then.parquet",
        cwd=tmp_path,
    )
    assert_clean(early, "customers as of 2011-09-11", str(tmp_path / "then.parquet"))
    late = in_terminal("assign", data, "--model", uci_run.out_dir, "--out", tmp_path / "now.parquet", cwd=tmp_path)
    assert_clean(late, "customers as of 2011-12-10")
    compared = in_terminal("compare", tmp_path / "then.parquet", tmp_path / "now.parquet", cwd=tmp_path)
    assert_clean(compared, "Learned segments: customers as of 2011-09-11 (rows)", "were in the same segment as of")
    report = in_terminal("report", uci_run.out_dir, cwd=tmp_path)
    assert_clean(report, f"Report: {uci_run.out_dir / 'report.html'}")


def test_the_course_recipes_table_is_titled_with_what_it_shows():
    import io

    from rich.console import Console

    from custseg.report.terminal import print_course

    shown = io.StringIO()
    course = {
        "comparison": [
            {"figure": "customers", "published": 4334, "reproduced": 4334, "tolerance": "exact", "holds": True}
        ],
        "counts": {"customers": 4334, "customers_after_trim": 4044},
    }
    print_course(Console(file=shown, width=120), course)
    assert "The published course pipeline's figures, reproduced" in " ".join(shown.getvalue().split())
    assert "REFERENCE.md" not in shown.getvalue()  # a file of this repository's checkout, not the user's
