import pytest
from csvkit_lite import CSVError, format, parse


def test_single_field_without_line_break():
    assert parse("x") == [["x"]]


def test_quote_in_the_middle_of_a_plain_field_is_text():
    assert parse('ab"c,d\n') == [['ab"c', "d"]]


def test_bad_delimiter_is_refused():
    with pytest.raises(ValueError):
        parse("a", delimiter='"')


def test_unclosed_quote_is_an_error():
    with pytest.raises(CSVError, match="line 1"):
        parse('"abc')


def test_format_empty_records():
    assert format([]) == ""
