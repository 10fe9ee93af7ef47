import pytest
from iniparse import ParseError, parse


def test_r1_sections_of_string_keys():
    assert parse("[a]\nx = 1\n[b]\ny = 2\n") == {"a": {"x": "1"}, "b": {"y": "2"}}


def test_r2_section_name_is_stripped():
    assert parse("[  db  ]\nhost = h\n") == {"db": {"host": "h"}}


def test_r3_both_separators_and_stripping():
    assert parse("[s]\n a =  1 \nb:2\n") == {"s": {"a": "1", "b": "2"}}


def test_r4_comments_and_blank_lines():
    assert parse("; top\n\n[s]\n# c\nk = v\n") == {"s": {"k": "v"}}


def test_r5_keys_are_case_insensitive():
    assert parse("[s]\nKey = 1\nKEY = 2\n") == {"s": {"key": "2"}}


def test_r6_repeated_section_merges():
    assert parse("[s]\na = 1\n[t]\n[s]\nb = 2\n") == {"s": {"a": "1", "b": "2"}, "t": {}}


def test_r7_key_before_section():
    with pytest.raises(ParseError) as info:
        parse("k = v\n")
    assert info.value.line == 1


def test_r7_bad_line():
    with pytest.raises(ParseError, match="3"):
        parse("[s]\nk = v\nnonsense\n")
