import pytest
from semver import Version


def test_r1_parse():
    v = Version.parse("1.2.3-alpha.1+build.9")
    assert (v.major, v.minor, v.patch) == (1, 2, 3)
    assert v.prerelease == ("alpha", "1")
    assert v.build == ("build", "9")


def test_r2_invalid():
    for text in ("1.2", "1.02.3", "1.2.3-", "1.2.3-a$"):
        with pytest.raises(ValueError):
            Version.parse(text)


def test_r3_round_trip():
    for text in ("0.1.0", "1.0.0-rc.1", "1.0.0+exp.sha.5114f85"):
        assert str(Version.parse(text)) == text


def test_r4_precedence():
    p = Version.parse
    assert p("1.0.0") < p("2.0.0") < p("2.1.0") < p("2.1.1")
    assert p("1.0.0-alpha") < p("1.0.0")
    assert p("1.0.0-2") < p("1.0.0-11") < p("1.0.0-a")
    assert p("1.0.0-alpha") < p("1.0.0-alpha.1")


def test_r5_build_is_ignored():
    assert Version.parse("1.0.0+a") == Version.parse("1.0.0+b")


def test_r6_bump():
    v = Version.parse("1.4.2-rc.1")
    assert str(v.bump("minor")) == "1.5.0"
    with pytest.raises(ValueError):
        v.bump("build")
