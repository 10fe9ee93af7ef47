"""%f takes 1 to 6 digits of a second, as datetime.strptime does (FAIL_TO_PASS)."""

from datetime import datetime, time

import parse


def test_five_digits_of_a_second():
    r = parse.parse("{dt:%Y-%m-%d %H:%M:%S.%f}", "2023-11-21 13:23:27.12345")
    assert r.named["dt"] == datetime(2023, 11, 21, 13, 23, 27, 123450)


def test_three_digits_of_a_second():
    r = parse.parse("{dt:%Y-%m-%d %H:%M:%S.%f}", "2023-11-21 13:23:27.123")
    assert r.named["dt"] == datetime(2023, 11, 21, 13, 23, 27, 123000)


def test_one_digit_of_a_second():
    r = parse.parse("{dt:%Y-%m-%d %H:%M:%S.%f}", "2023-11-21 13:23:27.0")
    assert r.named["dt"] == datetime(2023, 11, 21, 13, 23, 27, 0)


def test_a_time_with_milliseconds():
    r = parse.parse("at {:%H:%M:%S.%f}", "at 09:15:02.25")
    assert r[0] == time(9, 15, 2, 250000)


def test_search_finds_a_short_fraction_in_text():
    r = parse.search("done at {:%H:%M:%S.%f}.", "the job was done at 23:59:59.5.")
    assert r[0] == time(23, 59, 59, 500000)
