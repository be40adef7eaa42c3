"""Customers far past their own rhythm: does the value model know they are unlikely to come back?

A frequent buyer who stopped is the case BG/NBD-type models exist for. For each shop and cut, the
backtest customers (as of T - H) with at least 3 orders whose recency is over 3 times their own
average gap (tenure_days / frequency) are compared: the mean out-of-fold chance of ordering again
the value model gives them, against the share who did in the H days.

    python benchmarks/rhythm.py [--cut 2011-09-10] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from custseg.runs import Stages
from custseg.simulate import simulate_to_files
from custseg.value import ValueOptions, choose_model

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "online_retail.parquet"


def far_past(data, cut: datetime.date | None) -> dict:
    """The far-past-rhythm customers of one shop's backtest: how many, predicted and actual return."""
    table = pq.read_table(data)
    if cut is not None:
        stamp = datetime.datetime.combine(cut, datetime.time())
        table = table.filter(pc.less(table["InvoiceDate"], pa.scalar(stamp, pa.timestamp("ns"))))
    stages = Stages(as_of=cut)
    read = stages.read(table)
    clean = stages.clean(read)
    products = stages.products(clean)
    features = stages.features(read, clean, products)
    backtest = stages.backtest(clean, products, features)
    customers = backtest.customers
    _, _, chosen = choose_model(customers, ValueOptions(), backtest.folds, backtest.weights, 0)
    gap = customers.tenure_days.clip(lower=1) / customers.frequency
    far = (customers.frequency >= 3) & (customers.recency_days > 3 * gap)
    return {
        "customers": int(far.sum()),
        "predicted": float(chosen.predicted.p_order_again[far].sum()),
        "ordered_again": int(customers.returned[far].sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cut", type=datetime.date.fromisoformat, default=datetime.date(2011, 9, 10))
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    args = parser.parse_args()
    shops = {f"UCI as of {args.cut}": far_past(DATA, args.cut)}
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            files = simulate_to_files(Path(folder) / f"shop{seed}.parquet", 3000, seed=seed)
            shops[f"simulated shop, seed {seed}"] = far_past(files.log, None)
    total = {k: sum(shop[k] for shop in shops.values()) for k in ("customers", "predicted", "ordered_again")}
    shops["pooled"] = total
    for name, shop in shops.items():
        n = shop["customers"]
        if n:
            print(
                f"{name}: {n} customers far past their rhythm; mean predicted chance of ordering again "
                f"{shop['predicted'] / n:.3f}, share who did {shop['ordered_again'] / n:.3f}"
            )
    print(json.dumps(shops))


if __name__ == "__main__":
    main()
