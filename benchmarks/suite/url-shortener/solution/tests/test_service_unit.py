from service import Store, _problem


def test_store_skips_taken_codes():
    store = Store()
    store.add("https://a/", "1")
    assert store.add("https://b/", None)["code"] == "2"


def test_problem_accepts_a_valid_link():
    assert _problem({"url": "https://x/", "code": "ok_1"}) is None


def test_problem_refuses_a_long_code():
    assert _problem({"url": "https://x/", "code": "x" * 33})
