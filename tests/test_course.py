from __future__ import annotations

import pandas as pd
import pytest

from custseg.course import _quantity_canceled, compare
from custseg.pipeline import run
from custseg.settings import Settings


def frame(rows):
    data = pd.DataFrame(rows, columns=["customer_id", "product_id", "invoiced_at", "quantity", "description"])
    data["invoiced_at"] = pd.to_datetime(data.invoiced_at)
    return data


def test_one_earlier_purchase_absorbs_the_whole_cancellation():
    got = _quantity_canceled(frame([("a", "p", "2011-01-01", 5, "X"), ("a", "p", "2011-01-02", -8, "X")]))
    assert got.tolist() == [8.0, 0.0]


def test_with_several_the_last_large_enough_line_absorbs_it():
    got = _quantity_canceled(
        frame(
            [
                ("a", "p", "2011-01-01", 10, "X"),
                ("a", "p", "2011-01-02", 2, "X"),
                ("a", "p", "2011-01-03", -4, "X"),
                ("b", "p", "2011-01-01", 9, "X"),
                ("a", "q", "2011-01-04", -1, "Discount"),
            ]
        )
    )
    assert got.tolist() == [4.0, 0.0, 0.0, 0.0, 0.0]


def test_comparison_marks_what_holds():
    rows = {r["figure"]: r["holds"] for r in compare({"rows_raw": 541_909, "pca_silhouette": 0.55, "tsne_k": 8})}
    assert rows == {"rows_raw": True, "pca_silhouette": False, "tsne_k": True}


@pytest.mark.realdata
def test_course_recipe_reproduces_the_published_figures(shared_data, tmp_path):
    result = run(shared_data / "online_retail.parquet", tmp_path / "course", Settings(recipe="course"))
    comparison = result.record.course["comparison"]
    assert len(comparison) == 13
    failed = [row for row in comparison if not row["holds"]]
    assert not failed, failed
    means = result.record.course["pca_segment_means"]
    assert [round(m["frequency"], 1) for m in means] == [7.1, 2.3, 1.4]
    assert (tmp_path / "course" / "course_customers.parquet").exists()
