"""The report's first screen: what to do now, in plain words, seen in Chromium as a person sees it."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from conftest import CHROMIUM
from custseg.record import read_record
from custseg.report import REPORT_FILE
from custseg.report.brief import MAX_ACTIONS, MIN_ACTIONS, brief_actions

JARGON = re.compile(r"\b(eta|AUC|Gini|bootstrap|folds?|macro|macro-F1|R²|silhouette|T - H|T − H)\b", re.IGNORECASE)
"""Words an analyst reads in "How this was measured", never on the first screen."""

FIRST_SCREEN = """() => {
  const text = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const element = walker.currentNode.parentElement, box = element.getBoundingClientRect();
    if (box.top < innerHeight && box.bottom > 0 && box.height > 0 && element.checkVisibility()
        && walker.currentNode.textContent.trim()) text.push(walker.currentNode.textContent.trim());
  }
  return text.join(' ');
}"""


def first_screen(report, width: int) -> dict:
    """Open the report at ``width`` x 900 px: the first screen's visible text and where the actions end."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(report.resolve().as_uri(), wait_until="load")
            return {
                "text": page.evaluate(FIRST_SCREEN),
                "actions_bottom": page.evaluate(
                    "() => document.querySelector('section#brief table').getBoundingClientRect().bottom"
                ),
                "figures_bottom": page.evaluate(
                    "() => document.querySelector('section#brief .figures').getBoundingClientRect().bottom"
                ),
            }
        finally:
            browser.close()


@pytest.fixture(scope="module")
def run_folder(trained):
    return trained[1].out_dir


def test_the_first_screen_holds_the_summary_and_every_action(run_folder):
    seen = first_screen(run_folder / REPORT_FILE, 1400)
    assert seen["figures_bottom"] <= 900 and seen["actions_bottom"] <= 900, seen
    record = read_record(run_folder)
    assert f"{record.customers.count:,}" in seen["text"]
    assert "What to do now" in seen["text"] and "Follow the" in seen["text"]


@pytest.mark.parametrize("width", [1400, 800])
def test_the_first_screen_is_free_of_jargon(run_folder, width):
    text = first_screen(run_folder / REPORT_FILE, width)["text"]
    assert text and not JARGON.findall(text), JARGON.findall(text)


def test_the_brief_lists_the_segments_worth_most_each_with_its_list(run_folder):
    record = read_record(run_folder)
    rows = pd.read_csv(run_folder / "segments.csv", keep_default_na=False, na_values=[""])
    recommendation, actions, shown = brief_actions(record, rows, record.customers.count, record.input.currency)
    assert MIN_ACTIONS <= len(actions) <= MAX_ACTIONS or len(actions) == len(shown)
    total = f"expected_revenue_{record.settings['backtest']['horizon_days']}d_total"
    ranked = shown.sort_values(total, ascending=False)
    assert [a.customers for a in actions] == list(ranked.customers[: len(actions)])
    for action in actions:
        assert (run_folder / "lists" / action.list_file).is_file()
        assert not action.what.startswith("For customers with") and "In the backtest" not in action.what
        assert action.when and action.why and action.worth


def test_the_customer_count_differs_only_by_those_who_returned_everything_and_says_so(run_folder):
    record = read_record(run_folder)
    html = (run_folder / REPORT_FILE).read_text(encoding="utf-8")
    returned = record.customers.fully_returned.count
    assert f"{record.customers.count:,} customers" in html
    if returned:
        assert f"{record.customers.count + returned:,} bought; {returned:,} returned everything" in html


def test_an_rfm_name_the_backtest_contradicts_is_qualified(run_folder):
    import dataclasses

    from custseg.report.data import ReportData
    from custseg.report.rfm import rfm_name_checks

    record = read_record(run_folder)
    shop = record.backtest.returned_share

    def with_rates(rates):
        segments = [
            dict(s, return_rate=rates.get(s["segment"], s["return_rate"])) for s in record.backtest.rfm.segments
        ]
        rfm = dataclasses.replace(record.backtest.rfm, segments=segments)
        changed = dataclasses.replace(record, backtest=dataclasses.replace(record.backtest, rfm=rfm))
        return ReportData(record=changed, customers=pd.DataFrame(), customer_count=0, lines=None, segments=None)

    named = {s["segment"] for s in record.backtest.rfm.segments}
    assert {"Lost", "Champions"} <= named
    contradicted = rfm_name_checks(with_rates({"Lost": shop, "Champions": shop / 4}))
    assert contradicted["Lost"].startswith("not gone") and "less active" in contradicted["Champions"]
    borne_out = rfm_name_checks(with_rates({"Lost": shop / 4, "Champions": shop}))
    assert "Lost" not in borne_out and "Champions" not in borne_out


def test_every_sections_opening_is_free_of_jargon(run_folder):
    import html as entities

    page = (run_folder / REPORT_FILE).read_text(encoding="utf-8")
    intros = [entities.unescape(text) for text in re.findall(r'<p class="intro">(.*?)</p>', page, re.S)]
    assert len(intros) >= 10
    spoken = [(intro[:80], JARGON.findall(intro)) for intro in intros if JARGON.findall(intro)]
    assert not spoken, spoken
    # What was measured, and how, is still there: folded under each section that has it.
    assert page.count('<details class="method">') >= 6
