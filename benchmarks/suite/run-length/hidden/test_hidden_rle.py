"""Hidden tests of the run-length entry: never shown to the agents."""

import random
import subprocess
import sys

import pytest
from rle import decode, encode


def test_round_trip_of_random_text():
    rng = random.Random(11)
    alphabet = "ab \n\tçé-"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) * rng.randint(1, 15) for _ in range(rng.randint(0, 8)))
        assert decode(encode(text)) == text


def test_runs_are_maximal():
    assert encode("aaaaaaaaaaaa") == "12a"
    assert encode("abab") == "1a1b1a1b"


def test_newlines_and_spaces_are_characters():
    assert encode("  \n\n") == "2 2\n"
    assert decode("2 2\n") == "  \n\n"


def test_decode_of_empty_data():
    assert decode("") == ""


@pytest.mark.parametrize("data", ["a", "3", "0a", "2a3", "2aa", "00b"])
def test_malformed(data):
    with pytest.raises(ValueError):
        decode(data)


def test_leading_zero_count_is_still_a_count():
    assert decode("02x") == "xx"


def run(*args, stdin):
    return subprocess.run(
        [sys.executable, "-m", "rle", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cli_round_trip_keeps_the_last_line_break():
    encoded = run("encode", stdin="hello\n")
    assert (encoded.returncode, encoded.stdout) == (0, "1h1e2l1o1\n")
    assert run("decode", stdin=encoded.stdout).stdout == "hello\n"


def test_cli_error():
    out = run("encode", stdin="r2d2")
    assert out.returncode == 1
    assert out.stderr.startswith("rle: ")
    assert out.stdout == ""
