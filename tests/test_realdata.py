"""The foundation on the real UCI Online Retail data (../shared/data)."""

from __future__ import annotations

import datetime

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest

from conftest import ARTIFACTS, open_in_chromium
from custseg.pipeline import run
from custseg.record import EarlyFit

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def runs(uci_run, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    # The CSV run stops before the learned segments: it is there to compare ingest and cleaning.
    return {
        "parquet": uci_run,
        "csv": run(shared_data / "online_retail.csv.gz", out / "csv", until="rfm"),
    }


def query(result, sql):
    with duckdb.connect(str(result.out_dir / "custseg.duckdb"), read_only=True) as con:
        return con.sql(sql).df()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_loader_reproduces_the_facts_of_the_data(runs, fmt):
    facts = query(
        runs[fmt],
        """
        select count(*) as rows,
               count(distinct invoice_id) as invoices,
               count(distinct product_id) as products,
               count(distinct customer_id) as customers,
               count(*) filter (where customer_id is null) as without_customer,
               min(invoiced_at) as first, max(invoiced_at) as last,
               count(*) filter (where invoice_id like 'C%') as cancellation_rows
        from transactions""",
    ).iloc[0]
    assert facts.rows == 541_909
    assert facts.invoices == 25_900
    assert facts.products == 4_070
    assert facts.customers == 4_372
    assert facts.without_customer == 135_080
    assert facts.cancellation_rows == 9_288
    assert str(facts["first"]) == "2010-12-01 08:26:00"
    assert str(facts["last"]) == "2011-12-09 12:50:00"
    columns = "customer_id, invoice_id, invoiced_at, product_id, description, quantity, unit_price, country"
    distinct = query(
        runs[fmt],
        f"""
        select (select count(*) from (select distinct {columns} from transactions)) as all_rows,
               (select count(*) from (select distinct {columns} from transactions
                                      where customer_id is not null)) as with_customer,
               (select count(distinct invoice_id) from transactions where customer_id is not null) as invoices
        """,
    ).iloc[0]
    # The README counts distinct rows on the raw columns, whose descriptions keep trailing spaces;
    # canonical descriptions are stripped, which merges no two rows of this file.
    assert distinct.all_rows == 536_641
    assert distinct.with_customer == 401_604
    assert distinct.invoices == 22_190


def test_parquet_and_csv_give_identical_canonical_tables(runs):
    sql = "select * from transactions order by row_id"
    pd.testing.assert_frame_equal(query(runs["parquet"], sql), query(runs["csv"], sql))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_row_is_kept_or_rejected_with_a_reported_reason(runs, fmt):
    rows = runs[fmt].record.rows
    assert rows.input_rows == 541_909
    assert rows.kept_rows + rows.rejected_rows == 541_909
    assert sum(rows.rejected_by_reason.values()) == rows.rejected_rows
    by_reason = rows.rejected_by_reason
    assert by_reason["missing_customer_id"] == 135_080
    assert by_reason["duplicate_row"] == 406_829 - 401_604
    returns = by_reason["matched_return"] + by_reason["partly_matched_return"] + by_reason["unmatched_return"]
    assert returns > 8_000
    assert by_reason["unmatched_return"] > 0
    assert runs[fmt].record.reconciliation.balanced is True
    counts = query(runs[fmt], "select reason, count(*) as n from rejected group by reason")
    assert dict(zip(counts.reason, counts.n, strict=True)) == {k: v for k, v in by_reason.items() if v}


def test_at_least_4300_customers_keep_a_purchase_line(runs):
    customers = query(runs["parquet"], "select count(distinct customer_id) as n from lines").n.iloc[0]
    assert customers >= 4_300
    assert customers == runs["parquet"].record.span.customers


def test_lines_net_revenue_matches_an_independent_pandas_netting(runs, shared_data):
    """Net quantity per (customer, product) equals purchases minus matched returns, never below 0."""
    lines = query(
        runs["parquet"],
        "select customer_id, product_id, sum(quantity) as bought, sum(net_quantity) as net from lines group by all",
    )
    matched = query(
        runs["parquet"],
        "select customer_id, product_id, sum(matched_quantity) as matched "
        "from rejected where reason like '%matched_return' group by all",
    )
    both = lines.merge(matched, on=["customer_id", "product_id"], how="left").fillna({"matched": 0.0})
    assert (both.net >= 0).all()
    pd.testing.assert_series_equal(both.net, both.bought - both.matched, check_names=False)


def test_every_customer_of_lines_has_a_row_or_is_listed_as_fully_returned(runs):
    result = runs["parquet"]
    in_lines = set(query(result, "select distinct customer_id from lines").customer_id)
    scored = query(result, "select customer_id, rfm_segment from customers")
    returned = result.record.customers.fully_returned
    assert set(scored.customer_id) | set(returned.customer_ids) == in_lines
    assert not set(scored.customer_id) & set(returned.customer_ids)
    assert returned.count == len(returned.customer_ids) > 0
    assert scored.customer_id.is_unique
    assert scored.rfm_segment.notna().all()


def test_rfm_equals_an_independent_pandas_computation(runs):
    result = runs["parquet"]
    lines = query(result, "select customer_id, invoice_id, invoiced_at, net_revenue from lines")
    as_of = pd.Timestamp(result.record.customers.as_of)
    assert as_of == pd.Timestamp("2011-12-10")
    orders = lines.groupby(["customer_id", "invoice_id"]).agg(at=("invoiced_at", "min"), revenue=("net_revenue", "sum"))
    orders = orders[orders.revenue > 0].reset_index()
    expected = orders.groupby("customer_id").agg(
        last=("at", "max"), frequency=("invoice_id", "count"), monetary=("revenue", "sum")
    )
    expected["recency_days"] = ((as_of - expected["last"]).dt.total_seconds() // 86400).astype("int64")
    got = query(result, "select customer_id, recency_days, frequency, monetary from customers").set_index("customer_id")
    expected = expected.loc[got.index]
    pd.testing.assert_series_equal(got.recency_days, expected.recency_days, check_dtype=False)
    pd.testing.assert_series_equal(got.frequency, expected.frequency, check_dtype=False)
    pd.testing.assert_series_equal(got.monetary, expected.monetary, check_dtype=False, rtol=1e-9)


def test_rfm_segment_sizes_are_reported_and_add_up(runs):
    result = runs["parquet"]
    segments = result.record.rfm.segments
    assert len(segments) == 11
    assert sum(s.customers for s in segments) == result.record.customers.count
    assert abs(sum(s.revenue_share for s in segments) - 1) < 0.001
    sizes = query(result, "select rfm_segment, count(*) as n from customers group by all")
    assert dict(zip(sizes.rfm_segment, sizes.n, strict=True)) == {
        s.segment: s.customers for s in segments if s.customers
    }
    champions = next(s for s in segments if s.segment == "Champions")
    lost = next(s for s in segments if s.segment == "Lost")
    assert champions.median_monetary > 5 * lost.median_monetary
    assert champions.median_recency_days < lost.median_recency_days


def test_product_categories_are_labelled_and_do_not_follow_price(runs):
    import numpy as np
    from sklearn.metrics import normalized_mutual_info_score

    result = runs["parquet"]
    products = query(result, "select * from products")
    categories = pd.read_csv(result.out_dir / "categories.csv")
    summary = result.record.products
    assert 10 <= summary.chosen <= 40
    # Every type naming 1% of the products is a category of its own, the most common first.
    own = [c for c in summary.candidates if c["own_category"]]
    assert len(own) == summary.chosen and summary.candidates[: summary.chosen] == own
    assert (
        min(c["products"] for c in own)
        >= 0.01 * len(products)
        > max(c["products"] for c in summary.candidates[summary.chosen :])
    )
    assert len(categories) == summary.chosen
    # Labels name product types, not word lists; the descriptions' types are the ones a buyer reads.
    assert not categories.label.str.contains(" / ").any()
    typed = products.set_index("description").product_type
    assert typed["WHITE HANGING HEART T-LIGHT HOLDER"] == "t-light holder"
    assert typed["JUMBO BAG RED RETROSPOT"] == "bag" and typed["PACK OF 72 RETROSPOT CAKE CASES"] == "cake case"
    assert categories.label.str.len().gt(0).all() and categories.examples.str.count(r" \| ").eq(2).all()
    assert categories.products.sum() == len(products) == result.record.span.products
    bands = pd.cut(products.median_price, [0, 1, 2, 3, 5, 10, np.inf], include_lowest=True, labels=False)
    assert normalized_mutual_info_score(products.category, bands) < 0.15
    described = products.description.fillna("").str.strip() != ""
    assert (products.category[described] != "unknown").all()


def test_product_categories_are_reproduced_exactly_from_the_runs_tables(runs):
    # Nothing random enters (no seed): the kept lines and products give the same categories again.
    from custseg.products import basket_matrix, categorize

    result = runs["parquet"]
    stored = query(result, "select * from products order by product_id")
    pairs = query(result, "select distinct invoice_id, product_id from lines")
    again, _ = categorize(
        stored[["product_id", "description", "median_price", "units", "revenue"]],
        baskets=basket_matrix(pairs, stored.product_id),
    )
    assert again.category.tolist() == stored.category.tolist()
    assert again.category_label.tolist() == stored.category_label.tolist()


def test_interest_shares_sum_to_one_for_every_customer(runs):
    result = runs["parquet"]
    customers = query(result, "select * from customers")
    shares = customers.filter(like="share_c")
    assert shares.shape[1] == result.record.products.chosen
    assert ((shares.sum(axis=1) - 1).abs() < 1e-9).all()
    assert customers.breadth.between(0, 1).all()
    assert (customers.dominant_category == shares.idxmax(axis=1).str.removeprefix("share_")).all()


def test_learned_segments_cover_every_customer_with_unique_names(runs):
    result = runs["parquet"]
    segments = result.record.segments
    customers = query(result, "select segment, segment_name, segment_noise from customers")
    assert customers.segment.notna().all() and customers.segment_name.notna().all()
    assert len(customers) == result.record.customers.count
    names = [p["name"] for p in segments.profiles]
    assert len(set(names)) == len(names) == segments.chosen["n_segments"]
    assert sum(p["customers"] for p in segments.profiles) == len(customers)
    candidates = pd.DataFrame(segments.candidates)
    assert set(candidates.model) == {"rules"} and set(candidates.space) == {"rules", "rules_next"}
    # Every customer satisfies the rule of their segment and no other, on the real data.
    table = pd.read_parquet(result.out_dir / "customers.parquet")
    for entry in segments.rules:
        holds = np.ones(len(table), dtype=bool)
        for condition in entry["conditions"]:
            values = table[condition["column"]].to_numpy(dtype=float)
            holds &= values >= condition["value"] if condition["at_least"] else values < condition["value"]
        assert (holds == (table.segment == entry["segment"]).to_numpy()).all(), entry
    # A name is true of every member (the typical gap is rounded in run.json: a day's leeway).
    gap = segments.typical_gap_days
    for profile in segments.profiles:
        members, name = table[table.segment == profile["segment"]], profile["name"]
        checks = {
            "New": members.tenure_days <= max(2 * gap, 60) + 1,
            "Active": (members.recency_days <= gap + 1) | (members.recency_own_gaps < 1),
            "Recent": members.recency_days <= 3 * gap + 1,
            "Overdue": members.recency_own_gaps >= 1,
            "Lapsing": (members.recency_days >= gap - 1) | (members.recency_own_gaps >= 1.5),
            "Lapsed": (members.recency_days >= 3 * gap - 1) | (members.recency_own_gaps >= 3),
        }
        for word, holds in checks.items():
            assert not name.startswith(word) or holds.all(), name
        assert "one-time" not in name or (members.frequency == 1).all(), name
    assert candidates.chosen.sum() == 1
    assert segments.chosen_by == "backtest" and segments.chosen["eligible"]
    assert segments.chosen["stability"] >= 0.8 and 4 <= segments.chosen["n_segments"] <= 10
    # actions lead with different categories, not the shop's top one for all
    actions = [p["over_indexed_categories"] for p in segments.profiles]
    assert len({a.split(" (")[0] for a in actions if a}) >= 2
    table = pd.read_csv(result.out_dir / "segments.csv")
    assert set(table.kind) == {"rfm", "learned"}
    assert table[table.kind == "learned"].description.str.len().gt(100).all()


def test_assign_reproduces_the_segments_of_run_for_every_customer(runs, shared_data, tmp_path):
    from custseg.pipeline import assign

    result = runs["parquet"]
    assign(shared_data / "online_retail.parquet", result.out_dir, tmp_path / "assigned.parquet")
    assigned = pd.read_parquet(tmp_path / "assigned.parquet")
    customers = pd.read_parquet(result.out_dir / "customers.parquet")
    merged = customers.merge(assigned, on="customer_id", suffixes=("_run", "_assign"))
    assert len(merged) == len(customers) == len(assigned)
    assert (merged.segment_run == merged.segment_assign).all()
    assert (merged.rfm_segment_run == merged.rfm_segment_assign).all()
    assert (merged.interest_group_run == merged.interest_group_assign).all()
    for column in ("predicted_segment", "predicted_category"):
        assert merged[f"{column}_run"].equals(merged[f"{column}_assign"]), column


def test_early_segment_prediction_beats_the_majority_class_on_unseen_customers(runs):
    early = runs["parquet"].record.early
    results = {(row.target, row.n_orders): row for row in early.results}
    first_order = results[("segment", 1)]
    assert first_order.test_customers >= 0.2 * early.eligible_customers
    assert first_order.fit.model.macro_f1 > first_order.fit.majority.macro_f1
    for row in results.values():
        assert isinstance(row.fit, EarlyFit)
        assert row.fit.model.macro_f1 > row.fit.majority.macro_f1


def test_an_early_model_of_interest_beats_the_first_orders_or_the_run_says_it_falls_back_to_them(runs):
    from custseg.report.early import against_first_orders

    early = runs["parquet"].record.early
    for row in early.results:
        if row.target != "category" or not isinstance(row.fit, EarlyFit):
            continue
        fit = row.fit
        if fit.chosen == "first_orders_lookup":
            # The fallback is the first orders as they are, not something worse.
            assert fit.model.macro_f1 >= fit.first_orders_as_is.macro_f1 - 0.005
            assert "no learned model beat the first orders" in against_first_orders(row)
        else:
            said = against_first_orders(row)
            assert fit.model.macro_f1 >= fit.first_orders_as_is.macro_f1 + 0.03 or "adds nothing" in said


def test_interest_groups_predict_what_customers_buy_next_and_lead_the_actions(runs):
    result = runs["parquet"]
    section = result.record.interests
    # Customers as of T - H who bought again: their group's mix beats the shop's, short of their own past mix.
    assert section.backtest.customers > 1000
    assert section.backtest.groups < section.backtest.shop and section.backtest.reduction > 0.025
    assert section.backtest.own_past < section.backtest.groups
    assert 2 <= section.chosen <= 12
    groups = pd.read_csv(result.out_dir / "interest_groups.csv")
    assert (groups.share_then >= 0.05).sum() >= 3 and groups.interest_group_name.is_unique
    customers = pd.read_parquet(result.out_dir / "customers.parquet")
    assert customers.interest_group.notna().all()
    learned = pd.read_csv(result.out_dir / "segments.csv").query("kind == 'learned'")
    assert learned.action.str.contains(r"Lead with .* for the \d+% in I\d", regex=True).sum() >= 2
    assert learned.action.is_unique


def test_the_report_opens_offline_in_chromium_with_every_chart(runs):
    report = runs["parquet"].out_dir / "report.html"
    assert report.stat().st_size < 10_000_000
    screenshot = ARTIFACTS / "report-online-retail.png"
    opened = open_in_chromium(report, screenshot)
    assert opened["errors"] == []
    assert opened["requests"] == []
    assert opened["plotly_roots"] == opened["charts"] >= 15
    assert screenshot.stat().st_size > 100_000


def test_segments_cut_at_a_date_predict_the_unseen_months_better_than_the_rfm_map(shared_data, tmp_path):
    """Segment as of 2011-09-10, then judge by the 90 days after it, which the run never used."""
    from custseg.backtest import Outcomes, in_sample_scores, join_outcomes, window_outcomes
    from custseg.pipeline import run
    from custseg.settings import load_settings

    cut = datetime.datetime(2011, 9, 10)
    result = run(shared_data / "online_retail.parquet", tmp_path / "cut", load_settings(None, as_of=cut.date()))
    with duckdb.connect(str(result.out_dir / "custseg.duckdb"), read_only=True) as con:
        backend = ibis.duckdb.from_connection(con)
        after = window_outcomes(backend.table("lines"), cut, cut + datetime.timedelta(days=90)).execute()
        customers = con.sql("select customer_id, segment, rfm_segment from customers").df()
    outcomes = Outcomes.of(join_outcomes(customers, after))
    learned, rfm = in_sample_scores(customers.segment, outcomes), in_sample_scores(customers.rfm_segment, outcomes)
    assert 4 <= customers.segment.nunique() <= 10
    assert learned["eta_squared"] > rfm["eta_squared"] and learned["eta_squared"] >= 0.24
    assert learned["auc"] >= rfm["auc"] - 0.01 and learned["auc"] >= 0.72
    # the run's own backtest saw only the log before the cut
    assert result.record.backtest.window[1] == datetime.datetime(2011, 9, 10, 0, 0, 0)


def test_a_frequent_buyer_long_silent_is_not_expected_back(runs):
    """Customer 17850 placed 34 orders in the log's first two days and none in the 372 days since."""
    customers = pd.read_parquet(runs["parquet"].out_dir / "customers.parquet").set_index("customer_id")
    gone = customers.loc["17850"]
    assert gone.frequency == 34 and gone.recency_own_gaps > 30
    assert gone.p_order_again_90d < 0.2
    # Judged against their own rhythm: frequent buyers far past it are expected back less than those within it.
    frequent = customers[customers.frequency >= 10]
    far, within = frequent[frequent.recency_own_gaps > 3], frequent[frequent.recency_own_gaps < 1]
    assert len(far) >= 5 and far.p_order_again_90d.mean() < within.p_order_again_90d.mean() - 0.2


def test_the_largest_accounts_are_ranked_not_capped_alike(runs):
    """Before, the three largest accounts were all expected to bring exactly 78,405.94: the link's end value."""
    customers = pd.read_parquet(runs["parquet"].out_dir / "customers.parquet")
    top = customers.nlargest(5, "expected_revenue_90d")
    assert top.expected_revenue_90d.nunique() == 5
    # Extrapolated within reason: no one is expected to bring more in 90 days than the largest account spent in the log.
    assert top.expected_revenue_90d.max() < customers.monetary.max()


def test_expected_value_predicts_the_backtest_better_than_the_published_references(runs):
    """The issue's references on this data: BG/NBD x Gamma-Gamma 0.513 / 0.244, a linear model 0.529 / 0.259."""
    value = runs["parquet"].record.value
    fit = value.backtest
    assert fit.customers == runs["parquet"].record.backtest.customers
    assert fit.spearman >= 0.53 and fit.r_squared_log >= 0.26
    assert 0.85 <= fit.revenue_ratio <= 1.15 and fit.auc >= 0.72
    assert value.chosen in {c["model"] for c in value.candidates} == {"linear", "gradient_boosting"}
    deciles = pd.DataFrame(value.calibration["deciles"])
    assert deciles.group.tolist() == list(range(1, 11))
    # Ordered by what was predicted, the deciles' actual revenue rises from the first to the last.
    assert deciles.actual_mean.iloc[-1] > 10 * deciles.actual_mean.iloc[0]
    assert (deciles.predicted_mean / deciles.actual_mean).between(0.5, 2).all()
    # Forward checks at every month the log allows: learned as of C - H, scored on the 90 days from C.
    forward = value.forward
    assert [c.trained_as_of.date().isoformat() for c in forward.cuts] == [
        "2011-06-13",
        "2011-05-14",
        "2011-04-14",
        "2011-03-15",
    ]
    assert all(c.spearman >= 0.5 and c.auc >= 0.72 for c in forward.cuts)
    assert all(0.6 <= c.revenue_ratio <= 1.2 for c in forward.cuts)
    for check in forward.cuts:
        by_segment = pd.DataFrame(check.segments)
        assert by_segment.customers.sum() == check.customers
        assert by_segment.actual_revenue.sum() == pytest.approx(check.actual_revenue, abs=0.01 * len(by_segment))
    assert forward.shop.tried == 4 and forward.segments.tried == 4 * len(runs["parquet"].record.segments.profiles)
    interval = value.expected.revenue_interval
    assert interval.level == 0.8 and interval.low < interval.high
    # The log starts nine days before 2010-12-10: no season a year earlier to correct the forecast by.
    assert "does not reach 2010-12-10 with 90 days of history" in value.season.reason and not value.forward.seasonal
    customers = pd.read_parquet(runs["parquet"].out_dir / "customers.parquet")
    assert customers.expected_revenue_90d.notna().all() and customers.p_order_again_90d.between(0, 1).all()
    assert customers.expected_revenue_90d.sum() == pytest.approx(value.expected.expected_revenue, rel=1e-6)
    segments = pd.read_csv(runs["parquet"].out_dir / "segments.csv")
    for kind in ("learned", "rfm"):
        rows = segments[segments.kind == kind]
        assert rows.expected_revenue_90d_total.sum() == pytest.approx(customers.expected_revenue_90d.sum(), rel=1e-6)
        assert rows.backtest_predicted_revenue.notna().all() and rows.backtest_mean_revenue.notna().all()
    # Each learned segment's total has its interval from the forward checks; the RFM map's are not checked forward.
    learned = segments[segments.kind == "learned"]
    assert (learned.expected_revenue_90d_total_low < learned.expected_revenue_90d_total_high).all()
    assert segments[segments.kind == "rfm"].expected_revenue_90d_total_low.isna().all()


def test_the_migration_adds_up_to_the_segment_sizes_at_both_dates(runs):
    record = runs["parquet"].record
    for kind, column in (("learned", "segment"), ("rfm", "rfm_segment")):
        migration = getattr(record.movement, kind)
        flows = pd.DataFrame(migration.flows)
        customers = pd.read_parquet(runs["parquet"].out_dir / "customers.parquet")
        assert flows.groupby("to_segment").customers.sum().to_dict() == customers[column].value_counts().to_dict()
        assert flows[flows.from_segment != "(new)"].customers.sum() == record.backtest.customers
        assert (flows.to_segment != "(gone)").all()
        assert migration.from_date == datetime.date(2011, 9, 11) and migration.to_date == datetime.date(2011, 12, 10)
        assert any(sentence.startswith("The largest move down:") for sentence in migration.sentences)
