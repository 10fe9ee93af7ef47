"""Hidden tests of the kv-cli entry: never shown to the agents."""

import json
import os
import subprocess
import sys


def kv(*args, cwd=None):
    env = {**os.environ}
    return subprocess.run(
        [sys.executable, "-m", "kvstore", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env=env,
    )


def test_default_db_is_kv_json_in_the_current_directory(tmp_path):
    out = kv("set", "k", "v", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "kv.json").read_text()) == {"k": "v"}
    assert kv("get", "k", cwd=tmp_path).stdout == "v\n"


def test_missing_db_is_an_empty_store(tmp_path):
    db = tmp_path / "none.json"
    out = kv("--db", str(db), "list")
    assert (out.returncode, out.stdout) == (0, "")
    assert kv("--db", str(db), "get", "x").returncode == 1


def test_values_keep_unicode_and_equals_signs(tmp_path):
    db = str(tmp_path / "s.json")
    kv("--db", db, "set", "greeting", "héllo=wörld")
    assert kv("--db", db, "get", "greeting").stdout == "héllo=wörld\n"


def test_not_json_at_all(tmp_path):
    db = tmp_path / "s.json"
    db.write_text("{oops")
    for args in (["get", "a"], ["list"], ["delete", "a"]):
        out = kv("--db", str(db), *args)
        assert out.returncode == 2
        assert out.stderr.startswith("kvstore: ")
    assert db.read_text() == "{oops"


def test_non_string_value_is_refused(tmp_path):
    db = tmp_path / "s.json"
    db.write_text('{"a": 1}')
    assert kv("--db", str(db), "get", "a").returncode == 2


def test_unknown_command_is_a_usage_error(tmp_path):
    assert kv("--db", str(tmp_path / "s.json"), "frobnicate").returncode == 2


def test_delete_keeps_the_other_keys(tmp_path):
    db = str(tmp_path / "s.json")
    kv("--db", db, "set", "a", "1")
    kv("--db", db, "set", "b", "2")
    kv("--db", db, "delete", "a")
    assert kv("--db", db, "list").stdout == "b=2\n"
