"""Raw Amazon lines (2014 Python literals, 2018 JSON) -> tables; bad lines -> file:line errors."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from data_fixtures import review_2014, review_2018, write_gz_lines
from sgp4sr.data.parse import ParseError, parse_meta, parse_reviews


def test_reviews_both_formats_in_file_order(tmp_path):
    path = write_gz_lines(tmp_path / "r.json.gz", [
        review_2014("A1", "B1", 100, 5.0),
        review_2018("A2", "B1", 50, 3.0),
        "",  # blank lines are not malformed
        repr({"reviewerID": "A3", "asin": "0000031852", "unixReviewTime": 7}),  # no rating, all-digit ASIN
    ])
    df = parse_reviews(path)
    assert df["user"].tolist() == ["A1", "A2", "A3"]
    assert df["item"].tolist() == ["B1", "B1", "0000031852"]
    assert df["timestamp"].dtype == np.int64 and df["timestamp"].tolist() == [100, 50, 7]
    assert df["rating"].dtype == np.float32
    assert df["rating"].tolist()[:2] == [5.0, 3.0] and np.isnan(df["rating"].iloc[2])


@pytest.mark.parametrize("bad", [
    "{'reviewerID': 'A1', 'asin': 'B1', 'unixReviewTime': ",  # truncated literal
    '{"reviewerID": "A1", "asin": "B1"}',  # JSON without a time
    "['not', 'a', 'dict']",
    "{'reviewerID': 'A1', 'asin': 'B1', 'unixReviewTime': 'yesterday'}",
])
def test_malformed_review_names_file_and_line(tmp_path, bad):
    path = write_gz_lines(tmp_path / "r.json.gz", [review_2014("A1", "B1", 1), review_2018("A2", "B2", 2), bad])
    with pytest.raises(ParseError, match=r"r\.json\.gz"):
        parse_reviews(path)
    if "yesterday" not in bad:  # the others fail while decoding the line: position is known
        with pytest.raises(ParseError, match=r"r\.json\.gz:3: malformed"):
            parse_reviews(path)


def test_skip_malformed_counts(tmp_path, caplog):
    path = write_gz_lines(tmp_path / "r.json.gz", [review_2014("A1", "B1", 1), "{oops", "nonsense", review_2018("A2", "B2", 2)])
    with caplog.at_level(logging.WARNING):
        df = parse_reviews(path, skip_malformed=True)
    assert df["user"].tolist() == ["A1", "A2"]
    assert "skipped 2 malformed line(s)" in caplog.text


def test_meta_2014_and_2018_fields(tmp_path):
    path = write_gz_lines(tmp_path / "m.json.gz", [
        repr({"asin": "B1", "title": "Soft Bottle", "description": "A bottle.", "brand": "Acme",
              "categories": [["Baby", "Feeding", "Bottles"], ["Baby", "Gifts"]], "imUrl": "http://x/1.jpg"}),
        json.dumps({"asin": "B2", "title": "Rice", "description": ["Long grain.", "", "Tasty."],
                    "category": ["Prime Pantry", "Grains"], "brand": "Farm",
                    "imageURL": ["http://x/small.jpg"], "imageURLHighRes": ["http://x/large.jpg"]}),
        repr({"asin": "B1", "title": "duplicate entry is ignored"}),
        repr({"asin": "B3"}),  # items without metadata fields still get a row
    ])
    meta = parse_meta(path).set_index("item")
    assert list(meta.index) == ["B1", "B2", "B3"]
    assert meta.loc["B1", "categories"] == "Baby > Feeding > Bottles; Baby > Gifts"
    assert meta.loc["B1", "title"] == "Soft Bottle" and meta.loc["B1", "image_url"] == "http://x/1.jpg"
    assert meta.loc["B2", "description"] == "Long grain. Tasty."
    assert meta.loc["B2", "categories"] == "Prime Pantry > Grains"
    assert meta.loc["B2", "image_url"] == "http://x/large.jpg"
    assert meta.loc["B3"].tolist() == ["", "", "", "", ""]


def test_malformed_meta_line(tmp_path):
    path = write_gz_lines(tmp_path / "m.json.gz", [repr({"asin": "B1"}), repr({"title": "no asin"})])
    with pytest.raises(ParseError, match=r"m\.json\.gz:2: malformed .*asin"):
        parse_meta(path)



def test_meta_restricted_to_reviewed_items(tmp_path):
    path = write_gz_lines(tmp_path / "m.json.gz", [
        repr({"asin": "B1", "title": "kept"}),
        "{'asin': 'B2', 'title': broken line of an item nobody reviewed",
        json.dumps({"title": "B3 is kept", "asin": "B3"}),
    ])
    meta = parse_meta(path, keep_asins={"B1", "B3"})
    assert meta["item"].tolist() == ["B1", "B3"]
    with pytest.raises(ParseError, match=r"m\.json\.gz:2"):
        parse_meta(path, keep_asins={"B2"})
