"""A string with characters after a valid date or time is not ISO 8601 (FAIL_TO_PASS)."""

import pytest
from isodate import ISO8601Error, parse_date, parse_datetime, parse_time


@pytest.mark.parametrize("text", ["2024-03-15junk", "2024-03-15 ", "20240315x", "2024-W11-5!"])
def test_a_date_with_trailing_characters_is_refused(text):
    with pytest.raises(ISO8601Error):
        parse_date(text)


@pytest.mark.parametrize("text", ["10:20:30junk", "10:20:30.5 ", "102030Z0", "10:20+01:00:00"])
def test_a_time_with_trailing_characters_is_refused(text):
    with pytest.raises(ISO8601Error):
        parse_time(text)


def test_a_datetime_with_trailing_characters_is_refused():
    with pytest.raises(ISO8601Error):
        parse_datetime("2024-03-15T10:20:30Zextra")
