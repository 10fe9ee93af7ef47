from iniparse import ParseError, parse


def test_error_message_starts_with_the_line():
    try:
        parse("[s]\n\n???\n")
    except ParseError as error:
        assert str(error).startswith("line 3:")
    else:
        raise AssertionError("expected a ParseError")


def test_value_may_contain_separators():
    assert parse("[s]\nk = a=b:c\n") == {"s": {"k": "a=b:c"}}
