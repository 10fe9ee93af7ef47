import pytest
from model import validate


def test_phone_only_contact():
    assert validate({"kind": "person", "name": "P", "phones": [{"number": "+15551234567"}]}) is None


def test_message_names_the_phone():
    with pytest.raises(ValueError, match=r"phones\[1\]"):
        validate(
            {"kind": "person", "name": "P", "phones": [{"number": "+15551234567"}, {"number": "5"}]}
        )
