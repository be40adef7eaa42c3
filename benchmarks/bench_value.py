"""Benchmark: custseg's expected 90-day value against BG/NBD x Gamma-Gamma (pymc-marketing) and a linear model.

Two protocols, both on customers described by custseg's own cleaning (returns netted, the same
orders for every model), scored by the same function (`custseg.backtest.value_scores`):

* backtest: the customers as of T - H of the full log and their revenue in the last H days, the
  table every custseg run learns from. custseg's value model and the linear regression are scored
  out of fold (5 folds); BG/NBD x Gamma-Gamma is fitted on the orders before T - H (it never sees
  the outcomes) and predicts the H days.
* forward, for each cut C: the log before C only. custseg runs as a run on that day would (its
  stages up to the value, with the season a year earlier where the log reaches it) and gives every
  customer as of C their expected value and the shop's total its 80% interval; BG/NBD x
  Gamma-Gamma is fitted on the orders before C; the linear regression learns on the same backtest
  as custseg. The H days after C, which no model saw, judge them.

Figures: Spearman of expected with actual revenue, R squared of log revenue (squared correlation
of log1p expected and log1p actual), the normalized Gini and the decile error (the ranking and
the calibration by value band of Wang, Liu and Miao 2019, `custseg.backtest.normalized_gini` and
`decile_error`), the AUC of the chance of ordering again (BG/NBD: one minus the probability of no
purchase in H days), the predicted total against the actual (and for custseg forward, whether its
80% interval held it), and the seconds each model took to fit and predict.

``--seasonal SEED`` runs on a simulated shop of three years with a planted November peak and
customers who leave (`custseg.simulate.seasonal`, 3,000 customers) instead of ``--data``, with
cuts before, at and after its second and third peaks.

    .venv/bin/pip install -e '.[bench]'     # pymc-marketing: about 800 MB, compiles on first use
    .venv/bin/python benchmarks/bench_value.py [--cuts 2011-06-01 2011-07-01 2011-08-01 2011-09-10] [--horizon 90]
    .venv/bin/python benchmarks/bench_value.py --seasonal 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn.linear_model import LinearRegression

from custseg.backtest import (
    backtest_date,
    decile_error,
    fold_ids,
    join_outcomes,
    normalized_gini,
    value_scores,
    window_outcomes,
)
from custseg.features import orders
from custseg.record import Skipped
from custseg.runs import Stages
from custseg.simulate.seasonal import seasonal_log
from custseg.spaces import FeatureSpace
from custseg.value import TARGETS, ValueModel, ValueOptions, choose_model, value_columns

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "online_retail.parquet"
RESULTS = HERE / "results"
HORIZON = 90
"""H, the days forecast (``--horizon``)."""
CONFIG: Path | None = None
"""A custseg.toml setting ``[backtest] horizon_days`` to H, when it is not 90."""
SEASONAL_CUTS = ["2012-06-01", "2012-09-10", "2012-12-10", "2013-03-10", "2013-06-01"]
LINEAR_FEATURES = ["recency_days", "frequency", "monetary", "tenure_days"]


def bgnbd_gamma_gamma(order_table: pd.DataFrame, customers: pd.Series, as_of: datetime.datetime) -> pd.DataFrame:
    """Fit BG/NBD and Gamma-Gamma (MAP) on the orders before ``as_of``; predict the next HORIZON days.

    Returns `custseg.value.TARGETS` for ``customers``, in their order.
    """
    from pymc_marketing import clv

    order_table = order_table.assign(revenue=order_table.revenue.astype(float))
    before = order_table[(order_table.ordered_at < as_of) & (order_table.revenue > 0)]
    summary = clv.utils.rfm_summary(
        before,
        customer_id_col="customer_id",
        datetime_col="ordered_at",
        monetary_value_col="revenue",
        observation_period_end=as_of,
        time_unit="D",
    )
    summary["customer_id"] = summary.customer_id.astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        purchases = clv.BetaGeoModel(data=summary[["customer_id", "frequency", "recency", "T"]])
        purchases.fit(method="map")
        repeat = summary[summary.frequency > 0]
        spend = clv.GammaGammaModel(data=repeat[["customer_id", "monetary_value", "frequency"]])
        spend.fit(method="map")
        expected_orders = purchases.expected_purchases(future_t=HORIZON).squeeze().to_numpy()
        no_purchase = purchases.expected_probability_no_purchase(t=HORIZON).squeeze().to_numpy()
        per_order = spend.expected_customer_spend(summary[["customer_id", "monetary_value", "frequency"]])
    predicted = pd.DataFrame(
        {
            "p_order_again": 1 - no_purchase,
            "expected_orders": expected_orders,
            "expected_revenue": expected_orders * per_order.squeeze().to_numpy(),
        },
        index=summary.customer_id,
    )
    return predicted.reindex(customers.to_numpy()).reset_index(drop=True)


def linear_log(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The issue's reference: a linear regression of log1p revenue on log R, F, M and tenure."""
    space = FeatureSpace(features=LINEAR_FEATURES).fit(train)
    model = LinearRegression().fit(space.transform(train), np.log1p(train.next_revenue.clip(lower=0)))
    return pd.DataFrame({"expected_revenue": np.expm1(model.predict(space.transform(test)))})


def linear_out_of_fold(customers: pd.DataFrame, folds: np.ndarray) -> pd.DataFrame:
    predicted = pd.DataFrame(index=customers.index, columns=["expected_revenue"], dtype=float)
    for fold in np.unique(folds):
        test = folds == fold
        predicted.loc[test, "expected_revenue"] = linear_log(customers[~test], customers[test]).to_numpy()[:, 0]
    return predicted


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, round(time.perf_counter() - start, 2)


def row(name: str, predicted: pd.DataFrame, actual: pd.DataFrame, seconds: float, **more) -> dict:
    revenue, expected = actual.next_revenue.to_numpy(), predicted.expected_revenue.to_numpy(dtype=float)
    return {
        "model": name,
        **value_scores(predicted, actual),
        "normalized_gini": round(normalized_gini(revenue, expected), 4),
        "decile_error": round(decile_error(revenue, expected), 4),
        "seconds": seconds,
        **more,
    }


def prepared(data: Path, cut: datetime.datetime | None):
    """custseg's stages on the log before ``cut`` (all of it when None): lines, products, features as of the cut."""
    table = pq.read_table(data)
    if cut is not None:
        table = table.filter(pc.less(table["InvoiceDate"], pa.scalar(cut, pa.timestamp("ns"))))
    stages = Stages(config=CONFIG, as_of=cut.date() if cut else None)
    read = stages.read(table)
    clean = stages.clean(read)
    products = stages.products(clean)
    features = stages.features(read, clean, products)
    return stages, clean, products, features


def backtest_protocol(data: Path) -> dict:
    stages, clean, products, features = prepared(data, None)
    backtest = stages.backtest(clean, products, features)
    customers = backtest.customers
    actual = customers[["next_orders", "next_revenue"]]
    start = backtest_date(features.as_of, HORIZON)
    (model, candidates, chosen), seconds = timed(
        choose_model, customers, ValueOptions(), backtest.folds, backtest.weights, 0
    )
    order_table = orders(clean.lines, features.as_of).execute()
    bg, bg_seconds = timed(bgnbd_gamma_gamma, order_table, customers.customer_id, start)
    linear, linear_seconds = timed(linear_out_of_fold, customers, fold_ids(len(customers), 5, 0))
    return {
        "protocol": f"backtest: customers as of {start.date()}, revenue in the {HORIZON} days to "
        f"{features.as_of.date()}",
        "customers": len(customers),
        "custseg_chosen": chosen.model,
        "rows": [
            row(f"custseg ({chosen.model}, out of fold)", chosen.predicted, actual, seconds),
            row("BG/NBD x Gamma-Gamma (pymc-marketing, MAP)", bg, actual, bg_seconds),
            row("linear regression on log R, F, M, tenure (out of fold)", linear, actual, linear_seconds),
        ],
    }


def forward_protocol(data: Path, cut: datetime.datetime, full_lines) -> dict:
    stages, clean, products, features = prepared(data, cut)
    backtest = stages.backtest(clean, products, features)
    history = backtest.customers
    now = features.table.order_by("customer_id").execute()
    after = window_outcomes(full_lines, cut, cut + datetime.timedelta(days=HORIZON)).execute()
    actual = join_outcomes(now, after)[["next_orders", "next_revenue"]]

    def custseg_value():
        # As a run on that day: the segments, the movement and the value stage (forward checks, season).
        rfm = stages.rfm(features)
        segments = stages.segments(rfm, products, backtest)
        movement = stages.movement(backtest, rfm, segments, features)
        value = stages.value(segments, backtest, movement, clean, products, features)
        columns = value_columns(HORIZON)
        table = value.table.select("customer_id", *columns.values()).order_by("customer_id").execute()
        table = now[["customer_id"]].merge(table, on="customer_id", how="left")
        return table.rename(columns={column: target for target, column in columns.items()}), value.value

    (predicted, section), seconds = timed(custseg_value)
    interval = section.expected.revenue_interval
    total = actual.next_revenue.clip(lower=0).sum()
    held = None if isinstance(interval, Skipped) else bool(interval.low <= total <= interval.high)
    season = section.season
    seasonal = "not reached" if isinstance(season, Skipped) else ("applied" if season.applied else "not applied")
    order_table = orders(clean.lines, cut).execute()
    bg, bg_seconds = timed(bgnbd_gamma_gamma, order_table, now.customer_id, cut)
    linear, linear_seconds = timed(linear_log, history, now)
    return {
        "protocol": f"forward: the log before {cut.date()}, revenue in the {HORIZON} days after it",
        "customers": len(now),
        "custseg_chosen": section.chosen,
        "rows": [
            row(
                f"custseg ({section.chosen}, as a run on that day; season a year earlier {seasonal})",
                predicted[list(TARGETS)],
                actual,
                seconds,
                interval_held=held,
            ),
            row("BG/NBD x Gamma-Gamma (pymc-marketing, MAP)", bg, actual, bg_seconds),
            row("linear regression on log R, F, M, tenure (same backtest)", linear, actual, linear_seconds),
        ],
    }


def main() -> None:
    global HORIZON, CONFIG
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cuts", nargs="*", default=None, help="default: four UCI cuts, or SEASONAL_CUTS")
    parser.add_argument("--horizon", type=int, default=HORIZON)
    parser.add_argument("--seasonal", type=int, default=None, metavar="SEED", help="a simulated seasonal shop")
    args = parser.parse_args()
    import pymc_marketing

    HORIZON = args.horizon
    if HORIZON != 90:
        CONFIG = Path(tempfile.mkdtemp()) / "custseg.toml"
        CONFIG.write_text(f"[backtest]\nhorizon_days = {HORIZON}\n")
    ValueModel()  # fail early if custseg is not importable
    command = "python benchmarks/bench_value.py" + (f" --horizon {HORIZON}" if HORIZON != 90 else "")
    if args.seasonal is not None:
        folder = tempfile.mkdtemp()
        args.data = Path(folder) / f"seasonal{args.seasonal}.parquet"
        pq.write_table(seasonal_log(3000, 3, seed=args.seasonal), args.data)
        args.cuts = args.cuts or SEASONAL_CUTS
        command += f" --seasonal {args.seasonal}"
    args.cuts = args.cuts or ["2011-06-01", "2011-07-01", "2011-08-01", "2011-09-10"]
    command += " --cuts " + " ".join(args.cuts)
    blocks = [backtest_protocol(args.data)]
    print(json.dumps(blocks[-1]), file=sys.stderr)
    _, full, _, _ = prepared(args.data, None)
    for cut in args.cuts:
        blocks.append(forward_protocol(args.data, datetime.datetime.fromisoformat(cut), full.lines))
        print(json.dumps(blocks[-1]), file=sys.stderr)
    report = {
        "benchmark": f"expected {HORIZON}-day value: custseg against BG/NBD x Gamma-Gamma and a linear model",
        "data": args.data.name,
        "command": command,
        "pymc_marketing": pymc_marketing.__version__,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "blocks": blocks,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "value" if args.seasonal is None else "value_seasonal"
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# {report['benchmark']} ({report['data']})",
        "",
        f"`{report['command']}`, pymc-marketing {report['pymc_marketing']}, {report['measured_at']}.",
        "",
        "| protocol | customers | model | Spearman | R² of log revenue | normalized Gini | decile error | AUC of "
        "ordering again | predicted / actual revenue | 80% interval held | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for block in blocks:
        for figures in block["rows"]:
            auc = "-" if figures["auc"] is None else f"{figures['auc']:.3f}"
            held = {None: "-", True: "yes", False: "no"}[figures.get("interval_held")]
            lines.append(
                f"| {block['protocol']} | {block['customers']:,} | {figures['model']} | {figures['spearman']:.3f} | "
                f"{figures['r_squared_log']:.3f} | {figures['normalized_gini']:.3f} | {figures['decile_error']:.2f} | "
                f"{auc} | {figures['revenue_ratio']:.2f} | {held} | {figures['seconds']} |"
            )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
