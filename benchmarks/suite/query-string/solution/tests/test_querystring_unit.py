import pytest
from querystring import quote, unquote


def test_quote_tilde_and_slash():
    assert quote("~/") == "~%2F"


def test_unquote_plus_and_percent_20():
    assert unquote("a+b%20c") == "a b c"


def test_unquote_refuses_truncated_utf8():
    with pytest.raises(ValueError):
        unquote("%C3")
