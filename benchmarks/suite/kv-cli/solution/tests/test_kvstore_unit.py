import pytest
from kvstore import StoreError, load, main, save


def test_save_then_load(tmp_path):
    db = tmp_path / "s.json"
    save(db, {"a": "1"})
    assert load(db) == {"a": "1"}


def test_load_refuses_nested_values(tmp_path):
    db = tmp_path / "s.json"
    db.write_text('{"a": {"b": "c"}}')
    with pytest.raises(StoreError):
        load(db)


def test_main_prints_values(tmp_path, capsys):
    db = str(tmp_path / "s.json")
    assert main(["--db", db, "set", "k", "v"]) == 0
    assert main(["--db", db, "get", "k"]) == 0
    assert capsys.readouterr().out == "v\n"
