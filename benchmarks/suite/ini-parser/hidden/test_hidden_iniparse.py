"""Hidden tests of the ini-parser entry: never shown to the agents."""

import pytest
from iniparse import ParseError, parse


def test_value_keeps_later_separators():
    assert parse("[s]\nurl = http://example.com:80/a=b\n") == {
        "s": {"url": "http://example.com:80/a=b"}
    }


def test_colon_before_equals_splits_at_the_colon():
    assert parse("[s]\na: b = c\n") == {"s": {"a": "b = c"}}


def test_empty_value_is_allowed():
    assert parse("[s]\nkey =\n") == {"s": {"key": ""}}


def test_indented_comments_and_crlf():
    text = "[main]\r\n   ; note\r\n\t# other\r\nName = X\r\n"
    assert parse(text) == {"main": {"name": "X"}}


def test_section_names_keep_their_case():
    assert parse("[Server]\nPort = 80\n") == {"Server": {"port": "80"}}


def test_empty_section_is_kept():
    assert parse("[a]\n[b]\nk=v\n") == {"a": {}, "b": {"k": "v"}}


def test_empty_text():
    assert parse("") == {}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("k = v\n", 1),
        ("[s]\nk = v\njust words\n", 3),
        ("\n\n[ ]\n", 3),
        ("[s]\n= value\n", 2),
        ("[s\nk=v\n", 1),
    ],
)
def test_errors_carry_the_line(text, line):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.line == line
    assert str(line) in str(info.value)
    assert isinstance(info.value, ValueError)
