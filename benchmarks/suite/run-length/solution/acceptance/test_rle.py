import subprocess
import sys

import pytest
from rle import decode, encode


def run(*args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "rle", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_r1_encode():
    assert encode("aaabcc") == "3a1b2c"
    assert encode("") == ""


def test_r2_digits_are_refused():
    with pytest.raises(ValueError):
        encode("abc1")


def test_r3_decode():
    assert decode("3a1b2c") == "aaabcc"
    assert decode("12a") == "a" * 12


def test_r4_malformed():
    for data in ("ab", "0a", "3a2"):
        with pytest.raises(ValueError):
            decode(data)


def test_r5_command_line():
    out = run("encode", stdin="xxy")
    assert (out.returncode, out.stdout) == (0, "2x1y")
    assert run("decode", stdin="2x1y").stdout == "xxy"


def test_r6_command_line_error():
    out = run("decode", stdin="x")
    assert out.returncode == 1
    assert out.stderr.startswith("rle: ")
