"""Hidden tests of the csv-parser entry: never shown to the agents."""

import csv
import io
import random

import pytest
from csvkit_lite import CSVError, format, parse


def test_empty_fields_and_empty_quoted_fields():
    assert parse(',,\n"",x,""\n') == [["", "", ""], ["", "x", ""]]


def test_empty_text_has_no_record():
    assert parse("") == []


def test_crlf_inside_quotes_is_kept():
    assert parse('"x\r\ny",z\r\n') == [["x\r\ny", "z"]]


def test_tab_delimiter_round_trip():
    records = [["a\tb", "c"], ["d", "e"]]
    assert parse(format(records, delimiter="\t"), delimiter="\t") == records


def test_agrees_with_the_standard_library_on_random_records():
    rng = random.Random(7)
    alphabet = ["a", "b", ",", '"', "\n", " ", "é", "\r\n"]
    for _ in range(200):
        records = [
            ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(3)]
            for _ in range(rng.randint(1, 4))
        ]
        text = format(records)
        assert parse(text) == records
        expected = list(csv.reader(io.StringIO(text, newline="")))
        assert parse(text) == expected


def test_error_line_counts_line_breaks_inside_quotes():
    with pytest.raises(CSVError, match="line 3"):
        parse('"a\nb",c\n"d"x\n')


def test_csverror_is_a_valueerror():
    assert issubclass(CSVError, ValueError)
