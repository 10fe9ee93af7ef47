"""Hidden tests of the semver entry: never shown to the agents."""

from itertools import pairwise

import pytest
from semver import Version

ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
    "10.0.0",
]


def test_the_specifications_precedence_example():
    versions = [Version.parse(s) for s in ORDER]
    assert sorted(reversed(versions)) == versions
    for low, high in pairwise(versions):
        assert low < high
        assert high > low
        assert low != high
        assert low <= high


@pytest.mark.parametrize(
    "text",
    [
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.3-01",
        "1.2.3-",
        "1.2.3-a..b",
        "1.2.3+",
        "1.2.3+a_b",
        "v1.2.3",
        " 1.2.3",
        "1.2.3-ü",
    ],
)
def test_invalid_versions(text):
    with pytest.raises(ValueError):
        Version.parse(text)


@pytest.mark.parametrize(
    "text", ["0.0.0", "1.2.3-0", "1.2.3-0a", "1.2.3-a-b.c", "1.2.3+001", "1.2.3-rc.1+build.5"]
)
def test_valid_versions_round_trip(text):
    assert str(Version.parse(text)) == text


def test_build_is_kept_but_ignored():
    a, b = Version.parse("1.0.0-rc.1+x"), Version.parse("1.0.0-rc.1+y")
    assert a == b
    assert a.build == ("x",)
    assert not a < b and not b < a


def test_fields():
    v = Version.parse("3.4.5-beta.7+sha.abc")
    assert (v.major, v.minor, v.patch) == (3, 4, 5)
    assert v.prerelease == ("beta", "7")
    assert v.build == ("sha", "abc")


def test_bump_resets_and_drops():
    v = Version.parse("1.2.3-rc.1+b")
    assert str(v.bump("major")) == "2.0.0"
    assert str(v.bump("minor")) == "1.3.0"
    assert str(v.bump("patch")) == "1.2.4"
    assert str(v) == "1.2.3-rc.1+b"
