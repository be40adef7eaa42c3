from __future__ import annotations

import gzip
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pytest

from custseg.engine import DuckDBEngine, EngineOptions
from custseg.errors import EmptyInputError, EncodingError, InputFileError, InvalidValueError
from custseg.io import (
    SOURCE_ROW,
    check_encoding,
    detect_delimiter,
    detect_text_timestamp_format,
    detect_timestamp_format,
    read_source,
)

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROWS = (
    "536365,85123A,CAFÉ HEART HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
    "536366,71053,WHITE LANTERN,6,12/13/2010 9:01,3.39,,France\n"
)


@pytest.fixture()
def backend(tmp_path):
    engine = DuckDBEngine(EngineOptions())
    engine.open(tmp_path)
    yield engine
    engine.close()


def write(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("iso-8859-1", "iso-8859-1"), ("utf-16", "utf-16")],
)
def test_csv_encodings_are_detected_and_read(tmp_path, backend, encoding, detected):
    path = write(tmp_path / "x.csv", HEADER + ROWS, encoding)
    source = read_source(path, backend)
    assert source.encoding == detected
    assert source.columns[0] == "InvoiceNo"
    frame = source.table.order_by(SOURCE_ROW).to_pandas()
    assert frame.Description.tolist() == ["CAFÉ HEART HOLDER", "WHITE LANTERN"]
    assert frame[SOURCE_ROW].tolist() == [1, 2]
    assert frame.CustomerID.tolist() == ["17850", ""]


def test_windows_1252_text_is_read_with_its_curly_quotes_and_euro_sign(tmp_path, backend):
    rows = ROWS.replace("CAFÉ HEART HOLDER", "“CAFÉ” HEART – €5")
    source = read_source(write(tmp_path / "x.csv", HEADER + rows, "cp1252"), backend)
    assert source.encoding == "cp1252"
    frame = source.table.order_by(SOURCE_ROW).to_pandas()
    assert frame.Description.tolist() == ["“CAFÉ” HEART – €5", "WHITE LANTERN"]


def test_bytes_undefined_in_windows_1252_fall_back_to_iso_8859_1(tmp_path, backend):
    rows = ROWS.replace("CAFÉ HEART HOLDER", "CAFÉ HEART\x81")
    source = read_source(write(tmp_path / "x.csv", HEADER + rows, "iso-8859-1"), backend)
    assert source.encoding == "iso-8859-1"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiters_are_detected(tmp_path, backend, delimiter):
    text = (HEADER + ROWS.replace("2.55", "2_55")).replace(",", delimiter).replace("2_55", "2,55")
    source = read_source(write(tmp_path / "x.txt", text, "utf-8"), backend)
    assert source.delimiter == delimiter
    assert source.table.UnitPrice.to_pandas().tolist() == ["2,55", "3.39"]


def test_gzip_csv_parquet_and_xlsx_give_the_same_table(tmp_path, backend):
    csv_path = write(tmp_path / "x.csv", HEADER + ROWS, "utf-8")
    gz_path = tmp_path / "x.csv.gz"
    gz_path.write_bytes(gzip.compress(csv_path.read_bytes()))
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    frame.to_parquet(tmp_path / "x.parquet")
    frame.to_excel(tmp_path / "x.xlsx", index=False)
    tables = [
        read_source(p, backend).table.order_by(SOURCE_ROW).to_pandas().replace({None: ""}).astype(str)
        for p in (csv_path, gz_path, tmp_path / "x.parquet", tmp_path / "x.xlsx")
    ]
    for other in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], other)


def test_parquet_timestamps_with_a_time_zone_keep_the_shops_wall_clock(tmp_path, backend):
    import datetime

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    written = [datetime.datetime(2010, 12, 1, 16, 43), datetime.datetime(2011, 7, 1, 16, 43)]
    instants = pc.assume_timezone(pa.array(written, pa.timestamp("ns")), "Europe/London")
    pq.write_table(pa.table({"CustomerID": ["1", "2"], "InvoiceDate": instants}), tmp_path / "x.parquet")
    source = read_source(tmp_path / "x.parquet", backend)
    read = source.table.order_by(SOURCE_ROW).InvoiceDate.to_pandas()
    assert [t.to_pydatetime().replace(tzinfo=None) for t in read] == written


def test_the_time_zone_of_a_parquet_folder_or_url_is_found(tmp_path):
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from custseg.io import _parquet_time_zones

    folder = tmp_path / "orders"
    folder.mkdir()
    instants = pc.assume_timezone(pa.array([pd.Timestamp("2011-07-01 16:43")], pa.timestamp("ns")), "Asia/Tokyo")
    pq.write_table(
        pa.table({"InvoiceDate": instants, "At": pa.array([0], pa.timestamp("s", "UTC"))}), folder / "0.parquet"
    )
    expected = {"InvoiceDate": "Asia/Tokyo"}
    assert _parquet_time_zones(folder / "0.parquet") == _parquet_time_zones(folder.as_uri()) == expected
    assert _parquet_time_zones("hdfs://nowhere:9000/orders") == {}


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_column_name_twice_is_refused_naming_it(tmp_path, backend, suffix):
    frame = pd.DataFrame([["1", "3", "17850"]], columns=["Quantity", "Quantity", "CustomerID"])
    path = tmp_path / f"x{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_excel(path, index=False)
    with pytest.raises(InputFileError) as caught:
        read_source(path, backend)
    assert str(caught.value) == (
        f"{path}: column 'Quantity' appears more than once in the header (columns 1, 2); give each column its own name"
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["12/1/2010 8:26", "12/13/2010 9:01"], "%m/%d/%Y %H:%M"),
        (["1/12/2010 8:26", "13/12/2010 9:01"], "%d/%m/%Y %H:%M"),
        (["2010-12-01 08:26:00", "2010-12-13 09:01:00"], "%Y-%m-%d %H:%M:%S"),
        (["2010-12-01T08:26:00", "2010-12-13T09:01:00"], "%Y-%m-%dT%H:%M:%S"),
        (["13.12.2010 09:01", "01.12.2010 08:26"], "%d.%m.%Y %H:%M"),
    ],
)
def test_timestamp_formats_are_detected_from_all_values(values, expected):
    fmt, ties = detect_timestamp_format(ibis.memtable({"t": values}), "t")
    assert (fmt, ties) == (expected, [])
    assert detect_text_timestamp_format(pa.array(values)) == (expected, [])


def test_ambiguous_dates_choose_month_first_and_report_the_tie():
    fmt, ties = detect_timestamp_format(ibis.memtable({"t": ["1/2/2011 10:00", "3/4/2011 10:00"]}), "t")
    assert fmt == "%m/%d/%Y %H:%M"
    assert ties == ["%d/%m/%Y %H:%M"]
    assert detect_text_timestamp_format(pa.array(["1/2/2011 10:00", "3/4/2011 10:00"])) == (fmt, ties)


def test_fractional_seconds_are_read_as_whole_seconds():
    assert detect_text_timestamp_format(pa.array(["2011-01-02 10:00:01.250"])) == ("%Y-%m-%d %H:%M:%S", [])


def test_delimiter_detection_prefers_the_most_splitting_character():
    assert detect_delimiter("a;b;c,d\n") == ";"


def test_missing_empty_and_header_only_files_are_refused(tmp_path, backend):
    with pytest.raises(InputFileError, match=r"nope\.csv: no such file"):
        read_source(tmp_path / "nope.csv", backend)
    with pytest.raises(EmptyInputError, match=r"empty\.csv: the file is empty"):
        read_source(write(tmp_path / "empty.csv", "", "utf-8"), backend)
    with pytest.raises(EmptyInputError, match=r"head\.csv: the file has a header but no data rows"):
        read_source(write(tmp_path / "head.csv", HEADER, "utf-8"), backend)


def test_wrong_encoding_names_the_row(tmp_path):
    path = write(tmp_path / "x.csv", HEADER + ROWS, "iso-8859-1")
    with pytest.raises(EncodingError, match=r"x\.csv: row 1 is not valid utf-8 \(byte 0xc9\)"):
        check_encoding(path, "utf-8")


def test_binary_file_is_refused(tmp_path, backend):
    path = tmp_path / "x.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(EncodingError, match="holds NUL bytes"):
        read_source(path, backend)


def test_a_row_with_too_many_fields_is_named(tmp_path, backend):
    path = write(tmp_path / "x.csv", HEADER + ROWS + "1,2,3,4,5,6,7,8,9\n", "utf-8")
    with pytest.raises(InvalidValueError, match=r"x\.csv: row 3 has 9 fields, the header has 8"):
        read_source(path, backend)


def test_a_dataframe_is_read_like_a_parquet_file_keeping_a_zoned_wall_clock(backend):
    import datetime

    written = [datetime.datetime(2010, 12, 1, 16, 43), datetime.datetime(2011, 7, 1, 16, 43)]
    frame = pd.DataFrame({"CustomerID": [17850.0, None], "InvoiceDate": written}, index=[7, 9])
    frame["InvoiceDate"] = frame.InvoiceDate.dt.tz_localize("Europe/London")
    source = read_source(frame, backend)
    assert (source.path, source.file_format, source.columns) == (
        "DataFrame",
        "dataframe",
        ["CustomerID", "InvoiceDate"],
    )
    read = source.table.order_by(SOURCE_ROW).to_pandas()
    assert read[SOURCE_ROW].tolist() == [1, 2]
    assert [t.to_pydatetime() for t in read.InvoiceDate] == written


def test_a_dataframe_column_of_mixed_types_is_one_line(backend):
    with pytest.raises(InputFileError, match=r"^DataFrame: cannot be read: .*"):
        read_source(pd.DataFrame({"CustomerID": [17850, "x", 1.5]}), backend)


LINE_BREAKS = ROWS.replace("CAFÉ HEART HOLDER", '"MUG\nRED\r\nBIG"') + "\n"
"""Row 1's quoted description holds two line breaks, and a blank line (no row) follows row 2: row 3 is on line 7."""


def test_rows_are_numbered_by_record_when_values_hold_line_breaks(tmp_path, backend):
    source = read_source(write(tmp_path / "x.csv", HEADER + LINE_BREAKS + ROWS, "utf-8"), backend)
    read = source.table.order_by(SOURCE_ROW).to_pandas()
    assert read[SOURCE_ROW].tolist() == [1, 2, 3, 4]
    assert read.Description.tolist() == ["MUG\nRED\r\nBIG", "WHITE LANTERN", "CAFÉ HEART HOLDER", "WHITE LANTERN"]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_a_bad_row_after_values_with_line_breaks_is_named_by_its_row_not_its_line(tmp_path, backend, delimiter):
    text = (HEADER + LINE_BREAKS).replace(",", delimiter)
    fields = write(tmp_path / "fields.csv", text + delimiter.join("123456789") + "\n", "utf-8")
    with pytest.raises(InvalidValueError, match=r"fields\.csv: row 3 has 9 fields, the header has 8 \(1 such row"):
        read_source(fields, backend)
    encoded = write(tmp_path / "encoded.csv", text + ROWS.replace(",", delimiter), "iso-8859-1")
    with pytest.raises(EncodingError, match=r"encoded\.csv: row 3 is not valid utf-8 \(byte 0xc9\)"):
        read_source(encoded, backend, encoding="utf-8")


def test_a_byte_that_does_not_decode_in_the_header_is_named_so(tmp_path):
    path = write(tmp_path / "x.csv", HEADER.replace("Description", "Désignation") + ROWS, "iso-8859-1")
    with pytest.raises(EncodingError, match=r"x\.csv: the header is not valid utf-8 \(byte 0xe9\)"):
        check_encoding(path, "utf-8")


def test_a_dataframe_naming_a_column_twice_is_refused_as_a_file_is(backend):
    frame = pd.DataFrame([["1", "3", "17850"]], columns=["Quantity", "Quantity", "CustomerID"])
    with pytest.raises(InputFileError) as caught:
        read_source(frame, backend)
    assert str(caught.value) == (
        "DataFrame: column 'Quantity' appears more than once in the header (columns 1, 2); "
        "give each column its own name"
    )
