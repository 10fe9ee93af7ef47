"""parse_duration(..., as_timedelta_if_possible=False) always gives a Duration (FAIL_TO_PASS)."""

from datetime import timedelta

from isodate import Duration, parse_duration


def test_days_and_hours_as_a_duration():
    found = parse_duration("P2DT3H", as_timedelta_if_possible=False)
    assert isinstance(found, Duration)
    assert found == Duration(days=2, hours=3)
    assert found.tdelta == timedelta(days=2, hours=3)


def test_weeks_as_a_duration():
    found = parse_duration("P3W", as_timedelta_if_possible=False)
    assert isinstance(found, Duration)
    assert found.tdelta == timedelta(weeks=3)


def test_a_negative_duration_keeps_its_sign():
    found = parse_duration("-PT90M", as_timedelta_if_possible=False)
    assert isinstance(found, Duration)
    assert found.tdelta == timedelta(minutes=-90)


def test_fractional_seconds_as_a_duration():
    found = parse_duration("PT1M1.5S", as_timedelta_if_possible=False)
    assert isinstance(found, Duration)
    assert found.tdelta == timedelta(minutes=1, seconds=1.5)


def test_the_default_is_unchanged_when_asked_explicitly():
    assert parse_duration("PT5S", as_timedelta_if_possible=True) == timedelta(seconds=5)
    assert isinstance(parse_duration("P1Y2D", as_timedelta_if_possible=True), Duration)
