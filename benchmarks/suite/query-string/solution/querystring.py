"""URL query strings (application/x-www-form-urlencoded), without urllib.parse."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
HEX = "0123456789abcdefABCDEF"


def unquote(text: str) -> str:
    """Decode ``+`` and ``%XX`` escapes, then the bytes as UTF-8."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "+":
            out.append(0x20)
        elif char == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or any(c not in HEX for c in pair):
                raise ValueError(f"bad escape at position {i}: {text[i : i + 3]!r}")
            out.append(int(pair, 16))
            i += 2
        else:
            out += char.encode("utf-8")
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 after decoding: {exc.reason}") from None


def quote(text: str) -> str:
    """Encode ``text`` for a query string (space as ``+``, upper-case ``%XX``)."""
    parts = []
    for byte in text.encode("utf-8"):
        if byte in SAFE:
            parts.append(chr(byte))
        elif byte == 0x20:
            parts.append("+")
        else:
            parts.append(f"%{byte:02X}")
    return "".join(parts)


def parse(query: str) -> dict[str, list[str]]:
    """Each name of ``query`` with the list of its values, in order."""
    result: dict[str, list[str]] = {}
    for pair in query.removeprefix("?").split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        result.setdefault(unquote(name), []).append(unquote(value))
    return result


def build(params: Mapping[str, str | Sequence[str]]) -> str:
    """The query string of ``params`` (a value may be a string or a list of strings)."""
    pairs = []
    for name, values in params.items():
        for value in [values] if isinstance(values, str) else values:
            pairs.append(f"{quote(name)}={quote(value)}")
    return "&".join(pairs)
