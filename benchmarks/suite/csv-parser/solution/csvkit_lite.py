"""RFC 4180 CSV text to records and back, without the standard library's csv module."""

from __future__ import annotations

from collections.abc import Iterable

QUOTE = '"'


class CSVError(ValueError):
    """The text is not valid CSV; the message names the 1-based line."""


def parse(text: str, delimiter: str = ",") -> list[list[str]]:
    """The records of ``text``, each a list of field strings."""
    if len(delimiter) != 1 or delimiter in (QUOTE, "\r", "\n"):
        raise ValueError(f"bad delimiter {delimiter!r}")
    records: list[list[str]] = []
    record: list[str] = []
    field: list[str] = []
    state = "start"  # start | plain | quoted | closed
    line = quote_line = 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if state == "quoted":
            if c == QUOTE:
                if i + 1 < n and text[i + 1] == QUOTE:
                    field.append(QUOTE)
                    i += 1
                else:
                    state = "closed"
            else:
                if c == "\n":
                    line += 1
                field.append(c)
        elif c == delimiter:
            record.append("".join(field))
            field, state = [], "start"
        elif c == "\n" or (c == "\r" and i + 1 < n and text[i + 1] == "\n"):
            if c == "\r":
                i += 1
            record.append("".join(field))
            records.append(record)
            record, field, state = [], [], "start"
            line += 1
        elif state == "closed":
            raise CSVError(f"line {line}: text after a closing quote")
        elif c == QUOTE and state == "start":
            state, quote_line = "quoted", line
        else:
            field.append(c)
            state = "plain"
        i += 1
    if state == "quoted":
        raise CSVError(f"line {quote_line}: a quoted field is not closed")
    if state != "start" or record:
        record.append("".join(field))
        records.append(record)
    return records


def _field(value: str, delimiter: str) -> str:
    if any(c in value for c in (delimiter, QUOTE, "\r", "\n")):
        return QUOTE + value.replace(QUOTE, QUOTE * 2) + QUOTE
    return value


def format(records: Iterable[Iterable[str]], delimiter: str = ",") -> str:
    """CSV text of ``records``: CRLF line ends, only the fields that need it quoted."""
    return "".join(
        delimiter.join(_field(value, delimiter) for value in record) + "\r\n" for record in records
    )
