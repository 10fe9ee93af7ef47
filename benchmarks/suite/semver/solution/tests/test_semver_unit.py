from semver import Version


def test_hash_ignores_build():
    assert len({Version.parse("1.0.0+a"), Version.parse("1.0.0+b")}) == 1


def test_compare_with_other_types():
    assert Version.parse("1.0.0") != "1.0.0"


def test_max_of_versions():
    versions = [Version.parse(s) for s in ("1.0.0-rc.1", "1.0.0", "0.9.9")]
    assert str(max(versions)) == "1.0.0"
