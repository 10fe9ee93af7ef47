import pytest
from querystring import build, parse


def test_r1_lists_of_values():
    assert parse("a=1&b=2&a=3") == {"a": ["1", "3"], "b": ["2"]}


def test_r2_question_mark_and_empty_pairs():
    assert parse("?a=1&&b=2&") == {"a": ["1"], "b": ["2"]}


def test_r3_pair_without_equals():
    assert parse("flag&x=1") == {"flag": [""], "x": ["1"]}


def test_r4_decoding():
    assert parse("q=caf%C3%A9+au+lait") == {"q": ["café au lait"]}


def test_r5_bad_escape():
    with pytest.raises(ValueError):
        parse("a=%zz")


def test_r6_build():
    assert build({"a": "1", "b": ["2", "3"]}) == "a=1&b=2&b=3"


def test_r7_encoding():
    assert build({"q": "café au lait", "s": "a-b_c.d~e"}) == "q=caf%C3%A9+au+lait&s=a-b_c.d~e"


def test_r8_round_trip():
    params = {"name": ["Zoë & co"], "tags": ["a", "b+c"]}
    assert parse(build(params)) == params
