"""Hidden tests of the contact-schema entry: never shown to the agents."""

import pytest
from model import validate

PERSON = {"kind": "person", "name": "Grace Hopper", "emails": ["grace@navy.example.mil"]}


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "person", "name": "X", "phones": [{"number": "+1234567"}]},
        {
            "kind": "person",
            "name": "X",
            "phones": [{"number": "+123456789012345", "label": "mobile"}],
        },
        {**PERSON, "phones": [{"number": "+4915112345678"}] * 5},
        {**PERSON, "tags": []},
        {**PERSON, "tags": ["a", "b-2", "c3"]},
        {**PERSON, "rating": 1},
        {**PERSON, "name": "x" * 100},
        {**PERSON, "emails": ["a@b.io", "A@b.io"]},
        {
            "kind": "organisation",
            "name": "Both",
            "emails": ["x@y.org"],
            "phones": [{"number": "+3312345678"}],
        },
    ],
)
def test_valid_contacts(data):
    assert validate(data) is None


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "person", "name": "Unreachable", "tags": ["x"]},
        {"kind": "robot", "name": "R2", "emails": ["r2@d2.io"]},
        {**PERSON, "name": ""},
        {**PERSON, "name": "x" * 101},
        {**PERSON, "emails": []},
        {**PERSON, "emails": ["not-an-address"]},
        {**PERSON, "emails": ["a@b.c"]},
        {**PERSON, "emails": ["two@@b.io"]},
        {**PERSON, "emails": "grace@navy.example.mil"},
        {**PERSON, "phones": [{"number": "+0123456789"}]},
        {**PERSON, "phones": [{"number": "+123456"}]},
        {**PERSON, "phones": [{"number": "+1234567890123456"}]},
        {**PERSON, "phones": [{"number": "0049 151 1234"}]},
        {**PERSON, "phones": [{"number": "+4915112345678", "label": "fax"}]},
        {**PERSON, "phones": [{"label": "home"}]},
        {**PERSON, "phones": [{"number": "+4915112345678", "ext": "12"}]},
        {**PERSON, "phones": [{"number": "+4915112345678"}] * 6},
        {**PERSON, "phones": []},
        {**PERSON, "tags": ["Upper"]},
        {**PERSON, "tags": ["dup", "dup"]},
        {**PERSON, "tags": [f"t{i}" for i in range(11)]},
        {**PERSON, "rating": 0},
        {**PERSON, "rating": 6},
        {**PERSON, "rating": 4.5},
        {**PERSON, "rating": True},
        {**PERSON, "nickname": "Amazing Grace"},
        {"name": "No kind", "emails": ["a@b.io"]},
        {"kind": "person", "emails": ["a@b.io"]},
    ],
)
def test_invalid_contacts(data):
    with pytest.raises(ValueError):
        validate(data)
