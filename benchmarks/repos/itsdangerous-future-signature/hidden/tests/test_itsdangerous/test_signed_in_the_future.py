"""A signature dated in the future is expired, not valid (FAIL_TO_PASS)."""

from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from itsdangerous.exc import SignatureExpired
from itsdangerous.timed import TimedSerializer, TimestampSigner

SIGNED_AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_a_signature_from_the_future_is_expired():
    signer = TimestampSigner("secret-key")
    with freeze_time(SIGNED_AT):
        signed = signer.sign("value")
    with freeze_time("2024-05-01 11:59:00"), pytest.raises(SignatureExpired) as exc_info:
        signer.unsign(signed, max_age=3600)
    assert exc_info.value.date_signed == SIGNED_AT


def test_validate_refuses_a_signature_from_the_future():
    signer = TimestampSigner("secret-key")
    with freeze_time(SIGNED_AT):
        signed = signer.sign("value")
    with freeze_time("2024-04-30"):
        assert signer.validate(signed, max_age=10**6) is False


def test_a_timed_serializer_refuses_data_from_the_future():
    serializer = TimedSerializer("secret-key")
    with freeze_time(SIGNED_AT):
        data = serializer.dumps({"user": 7})
    with freeze_time("2024-05-01 11:00:00"), pytest.raises(SignatureExpired):
        serializer.loads(data, max_age=60)
