import io

import pytest
from rle import decode, encode, main


def test_unicode_runs():
    assert encode("ééé") == "3é"
    assert decode("3é") == "ééé"


def test_other_decimal_digits_are_refused():
    with pytest.raises(ValueError):
        encode("a\u0663")


def test_main_writes_no_line_break(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("zz"))
    assert main(["encode"]) == 0
    assert capsys.readouterr().out == "2z"
