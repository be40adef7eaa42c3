"""The lists a marketer loads into an email tool: one CSV per segment, every customer in exactly one."""

import dataclasses

import pandas as pd
import pytest
from typer.testing import CliRunner

from custseg.cli import app
from custseg.lists import list_file_name, recommended_segmentation
from custseg.record import read_record

IMPORT_KEYS = {"Email Address", "Customer ID"}


def read_lists(folder):
    """Every list of a folder read back as an email tool reads it: text, by header."""
    return {path.name: pd.read_csv(path, dtype=str, keep_default_na=False) for path in sorted(folder.glob("*.csv"))}


def check_lists(lists, out, kind):
    """Each segment of ``kind`` has a list of exactly its customers; every customer is in one list."""
    segments = pd.read_csv(out / "segments.csv")
    segments = segments[segments.kind == kind]
    customers = pd.read_parquet(out / "customers.parquet")
    column = "segment" if kind == "learned" else "rfm_segment"
    assert len(lists) == len(segments)
    listed = []
    for name, listed_rows in lists.items():
        key = listed_rows.columns[0]
        assert key in IMPORT_KEYS, name
        assert listed_rows.Segment.nunique() == 1, name
        segment = listed_rows.Segment.iloc[0]
        expected = set(customers.loc[customers[column] == segment, "customer_id"].astype(str))
        assert set(listed_rows[key]) == expected, name
        assert int(segments.set_index("segment").loc[segment, "customers"]) == len(listed_rows), name
        assert pd.to_datetime(listed_rows["Last Order Date"], format="%Y-%m-%d").notna().all()
        assert {"Segment Name", "Action", "Country", "Currency"} <= set(listed_rows.columns)
        listed.extend(listed_rows[key])
    assert len(listed) == len(set(listed)) == len(customers)


def test_every_run_writes_one_list_per_recommended_segment(trained):
    _, result = trained
    record = read_record(result.out_dir)
    kind = recommended_segmentation(record).segmentation
    lists = read_lists(result.out_dir / "lists")
    check_lists(lists, result.out_dir, kind)
    any_list = next(iter(lists.values()))
    amounts = [column for column in any_list.columns if column.startswith("Expected Revenue")]
    assert amounts == [f"Expected Revenue 90 Days ({record.input.currency})"]
    assert set(any_list.Currency) == {record.input.currency}
    # Highest expected revenue first: the top of a list is who to contact first.
    values = any_list[amounts[0]].astype(float)
    assert values.is_monotonic_decreasing


def test_export_writes_the_other_segmentations_lists(trained, tmp_path):
    _, result = trained
    shown = CliRunner().invoke(app, ["export", str(result.out_dir), "--segments", "rfm", "--out", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    check_lists(read_lists(tmp_path), result.out_dir, "rfm")


def test_export_of_a_folder_without_a_run_says_so_in_one_line(tmp_path):
    shown = CliRunner().invoke(app, ["export", str(tmp_path)])
    assert shown.exit_code == 1 and "Traceback" not in shown.output
    assert "give the output folder of custseg run" in shown.output


def test_the_segmentation_that_scored_better_on_the_backtest_is_recommended(trained):
    _, result = trained
    record = read_record(result.out_dir)
    learned = record.segments.backtest.validity

    def with_rfm_validity(validity):
        rfm = dataclasses.replace(record.backtest.rfm, validity=validity)
        return dataclasses.replace(record, backtest=dataclasses.replace(record.backtest, rfm=rfm))

    better_learned = recommended_segmentation(with_rfm_validity(learned - 0.05))
    assert better_learned.segmentation == "learned" and f"{learned:.3f}" in better_learned.reason
    assert "better than the RFM map" in better_learned.reason
    better_rfm = recommended_segmentation(with_rfm_validity(learned + 0.05))
    assert better_rfm.segmentation == "rfm" and "RFM map told apart" in better_rfm.reason
    # Within a standard error the two are said to be equal; the learned segments, rules, are followed.
    tied = recommended_segmentation(with_rfm_validity(learned + record.segments.backtest.validity_se / 2))
    assert tied.segmentation == "learned" and "as well as the RFM map" in tied.reason


@pytest.mark.parametrize(
    ("segment", "name", "file_name"),
    [
        ("S1", "Champions (spent 20,000 or more)", "S1-champions-spent-20-000-or-more.csv"),
        ("Can't Lose Them", "Can't Lose Them", "can-t-lose-them.csv"),
        ("S2", "Клиенты", "S2-клиенты.csv"),
    ],
)
def test_list_files_are_named_after_their_segment(segment, name, file_name):
    assert list_file_name(segment, name) == file_name
