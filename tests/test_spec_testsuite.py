"""Test-suite specs: existing tests are the acceptance tests and the requirements."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from darkfactory.engine import verify as runner
from darkfactory.errors import SpecError
from darkfactory.spec import detect_format, load_spec, requirement_links, requirement_matrix

REPO = Path(__file__).resolve().parent.parent
CART = REPO / "examples" / "specs" / "shopping-cart-tests"


def write(dir: Path, name: str, text: str) -> Path:
    path = dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def spec_error(path: Path, **kwargs: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path, **kwargs)
    return info.value


def test_example_suite_requirements_links_files_and_summary() -> None:
    assert detect_format(CART) == "testsuite"
    spec = load_spec(CART)
    assert spec.format == "testsuite"
    assert spec.title == "Shopping cart"
    assert [t.name for t in spec.acceptance_tests] == [
        "catalog.py",
        "conftest.py",
        "test_cart.py",
        "test_discounts.py",
        "checkout/test_checkout.py",
    ]
    assert spec.files_to_create == ["shop/__init__.py", "shop/cart.py", "shop/discounts.py"]
    assert "shop/__init__.py, shop/cart.py, shop/discounts.py" in spec.summary
    assert spec.summary.startswith("# Shopping cart")
    texts = [(r.id, r.text) for r in spec.requirements]
    assert texts[0] == (
        "R1",
        "A new cart holds no items and its total is 0 (test_cart.py::test_new_cart_is_empty)",
    )
    assert texts[2] == (
        "R3",
        "Total is price times quantity (test_cart.py::test_total_is_price_times_quantity)",
    )
    assert texts[5] == (
        "R6",
        "Remove: remove some; remove all drops the item; remove more than held raises "
        "(test_cart.py::TestRemove)",
    )
    assert texts[6][1].startswith("Discount codes: SAVE10 takes 10% off, HALF takes half off")
    r7 = spec.requirements[6]
    assert r7.source is not None and r7.source.file.endswith("test_discounts.py")
    assert r7.source.line == 6
    links = requirement_links(spec)
    assert links["test_cart.py::TestRemove::test_remove_some"] == ["R6"]
    assert links["test_discounts.py::DiscountCodeTests::test_unknown_code"] == ["R7"]
    assert links["checkout/test_checkout.py::test_receipt_lines"] == ["R8"]
    assert len(links) == 13 and spec.test_links == links


def test_matrix_keys_of_nested_files_match_the_run_outcomes() -> None:
    spec = load_spec(CART)
    nodeid = "checkout/test_checkout.py::test_receipt_lines"
    outcome = SimpleNamespace(nodeid=nodeid)
    assert runner.test_key(outcome, keep_dirs=True) == nodeid
    # Unit tests keep being keyed by file name, as before.
    assert runner.test_key(outcome) == "test_checkout.py::test_receipt_lines"
    outcomes = {key: "passed" for key in requirement_links(spec)}
    outcomes["test_cart.py::test_quantity_must_be_positive[0]"] = "passed"
    outcomes["test_cart.py::test_quantity_must_be_positive[-1]"] = "failed"
    rows = {r["id"]: r["passed"] for r in requirement_matrix(spec, outcomes)}
    assert rows["R8"] is True and rows["R5"] is False


def test_single_test_file_and_its_imports(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "test_calc.py",
        """
        import importlib
        import json
        import os.path

        import pytest
        import yaml

        from calc import add
        from calc.extra import mul

        try:
            import fancy_optional
        except ImportError:
            fancy_optional = None


        def test_adds():
            \"\"\"add() adds two numbers.

            More detail that is not part of the requirement.
            \"\"\"
            assert add(1, 2) == 3


        def test_mul_loads_lazily():
            assert importlib.import_module("lazy.mod") and mul(2, 3) == 6


        @pytest.fixture
        def test_data():
            return json.dumps({})


        async def test_async_thing():
            pass
        """,
    )
    assert detect_format(path) == "testsuite"
    spec = load_spec(path)
    assert spec.title == "Test calc"
    assert [t.name for t in spec.acceptance_tests] == ["test_calc.py"]
    assert [r.text for r in spec.requirements] == [
        "add() adds two numbers (test_calc.py::test_adds)",
        "Mul loads lazily (test_calc.py::test_mul_loads_lazily)",
        "Async thing (test_calc.py::test_async_thing)",
    ]
    assert spec.files_to_create == [
        "calc/__init__.py",
        "calc/extra.py",
        "lazy/__init__.py",
        "lazy/mod.py",
    ]


def test_names_and_marks_in_the_suite_do_not_link_other_requirements(tmp_path: Path) -> None:
    write(
        tmp_path,
        "suite/test_x.py",
        """
        import pytest


        @pytest.mark.req("R9")
        def test_r7_first():
            pass


        def test_second():
            pass
        """,
    )
    spec = load_spec(tmp_path / "suite")
    assert requirement_links(spec) == {
        "test_x.py::test_r7_first": ["R1"],
        "test_x.py::test_second": ["R2"],
    }


def test_unittest_classes_nested_classes_and_helpers(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    write(suite, "helpers.py", "def make():\n    return 1\n")
    write(suite, "data/sample.json", '{"a": 1}\n')
    write(suite, "instructions.md", "Build the thing.\n")
    write(
        suite,
        "tests/things_test.py",
        """
        import unittest

        from helpers import make
        from thing import Thing


        class ThingBehaviour(unittest.TestCase):
            def test_make(self):
                self.assertEqual(make(), 1)

            def helper(self):
                pass


        class TestGroups:
            class TestInner:
                def test_deep(self):
                    assert Thing()


        class TestWithInit:
            def __init__(self):
                pass

            def test_never_collected(self):
                pass


        class Plain:
            def test_not_a_test_class(self):
                pass
        """,
    )
    spec = load_spec(suite)
    assert spec.title == "Suite"
    assert spec.summary.startswith("Build the thing.")
    assert [t.name for t in spec.acceptance_tests] == [
        "helpers.py",
        "data/sample.json",
        "tests/things_test.py",
    ]
    assert [r.text for r in spec.requirements] == [
        "Thing behaviour: make (tests/things_test.py::ThingBehaviour)",
        "Groups: deep (tests/things_test.py::TestGroups)",
    ]
    assert requirement_links(spec) == {
        "tests/things_test.py::ThingBehaviour::test_make": ["R1"],
        "tests/things_test.py::TestGroups::TestInner::test_deep": ["R2"],
    }
    assert spec.files_to_create == ["thing.py"]


def test_format_override_on_a_directory(tmp_path: Path) -> None:
    write(tmp_path, "suite/test_a.py", "def test_a():\n    pass\n")
    assert load_spec(tmp_path / "suite", format="tests").format == "testsuite"
    err = spec_error(tmp_path / "suite", format="ticket")
    assert "is a directory" in err.message and err.hint is not None and "testsuite" in err.hint
    err = spec_error(write(tmp_path, "notes.md", "# x\n- y\n"), format="testsuite")
    assert "a test-suite spec is a directory of tests or one test_*.py file" in err.message


def test_suite_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    write(empty, "test_nothing.py", "import os\n\n\ndef helper():\n    pass\n")
    write(empty, "README.md", "# Empty\n")
    err = spec_error(empty)
    assert err.message == "no tests found in this directory"
    assert err.hint is not None and "test_*.py" in err.hint

    broken = tmp_path / "broken"
    write(broken, "test_ok.py", "def test_ok():\n    pass\n")
    bad = write(broken, "sub/test_bad.py", "def test_bad(:\n    pass\n")
    err = spec_error(broken)
    assert err.file == str(bad) and err.line == 1
    assert "Python syntax error" in err.message

    helper_error = tmp_path / "helper_error"
    write(helper_error, "test_ok.py", "def test_ok():\n    pass\n")
    helper = write(helper_error, "util.py", "x = 1\nif x\n")
    err = spec_error(helper_error)
    assert err.file == str(helper) and err.line == 2

    binary = tmp_path / "binary"
    write(binary, "test_ok.py", "def test_ok():\n    pass\n")
    (binary / "blob.dat").write_bytes(b"ok\n\xff\xfe")
    err = spec_error(binary)
    assert err.file == str(binary / "blob.dat") and err.line == 2
    assert "not UTF-8" in err.message

    spaced = tmp_path / "spaced"
    write(spaced, "test_ok.py", "def test_ok():\n    pass\n")
    write(spaced, "my data.txt", "x\n")
    assert "not a safe file name" in spec_error(spaced).message

    misnamed = write(tmp_path, "checks.py", "def test_a():\n    pass\n")
    err = spec_error(misnamed)
    assert "pytest collects test_*.py and *_test.py files only" in err.message

    assert "spec not found" in spec_error(tmp_path / "missing.py", format="testsuite").message


def test_links_outside_the_suite_are_refused(tmp_path: Path) -> None:
    outside = write(tmp_path, "secret.txt", "x\n")
    suite = tmp_path / "suite"
    write(suite, "test_ok.py", "def test_ok():\n    pass\n")
    (suite / "leak.txt").symlink_to(outside)
    err = spec_error(suite)
    assert "links outside the test-suite directory" in err.message


def test_hidden_and_cache_entries_are_left_out(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    write(suite, "test_ok.py", "def test_ok():\n    pass\n")
    write(suite, ".hidden/test_x.py", "def test_x(:\n")
    write(suite, "__pycache__/test_ok.cpython-311.pyc", "junk")
    write(suite, ".env", "SECRET=1\n")
    assert [t.name for t in load_spec(suite).acceptance_tests] == ["test_ok.py"]


# -- a suite written in unittest style ---------------------------------------------------

LIBRARY = REPO / "examples" / "specs" / "library-unittest"
LIBRARY_IMPL = Path(__file__).resolve().parent / "data" / "library_impl" / "library"


def test_unittest_suite_requirements_come_from_docstrings_and_names() -> None:
    spec = load_spec(LIBRARY)
    assert detect_format(LIBRARY) == spec.format == "testsuite"
    assert spec.title == "Library loans"
    assert [(r.id, r.text) for r in spec.requirements] == [
        (
            "R1",
            "The catalogue finds a book by its ISBN and by words of its title "
            "(test_catalog.py::TestCatalog)",
        ),
        (
            "R2",
            "Catalog removal: remove book; remove unknown isbn raises key error "
            "(test_catalog.py::CatalogRemovalTests)",
        ),
        (
            "R3",
            "Lending a book records who has it and when it is due: 14 days later "
            "(test_loans.py::LoanDeskTest)",
        ),
        (
            "R4",
            "Loan limit: a member may hold two books at a time; a third loan is refused "
            "(test_loans.py::LoanLimitTests)",
        ),
        (
            "R5",
            "A late return costs 10 cents a day, never more than the price of the book "
            "(fines/test_fines.py::FineTests)",
        ),
    ]
    # each requirement starts at its class
    for req in spec.requirements:
        assert req.source is not None and req.source.line is not None
        cls = req.text.rsplit("::", 1)[1].rstrip(")")
        lines = Path(req.source.file).read_text(encoding="utf-8").splitlines()
        assert lines[req.source.line - 1].startswith(f"class {cls}(unittest.TestCase):")


def test_unittest_suite_imports_decide_the_files_to_create() -> None:
    spec = load_spec(LIBRARY)
    # library.* is imported by the tests and by helpers.py; helpers is the suite's own;
    # datetime and unittest are the standard library; zoneinfo_extra is optional (try/except).
    assert spec.files_to_create == [
        "library/__init__.py",
        "library/catalog.py",
        "library/fines.py",
        "library/loans.py",
    ]
    assert spec.summary.startswith("# Library loans")
    assert spec.summary.endswith(
        "Files to create in the project root, from what the tests import: library/__init__.py, "
        "library/catalog.py, library/fines.py, library/loans.py."
    )


def test_unittest_suite_files_are_the_acceptance_tests_unchanged() -> None:
    spec = load_spec(LIBRARY)
    assert [t.name for t in spec.acceptance_tests] == [
        "helpers.py",
        "test_catalog.py",
        "test_loans.py",
        "fines/test_fines.py",
    ]
    for test in spec.acceptance_tests:
        assert test.content == (LIBRARY / test.name).read_text(encoding="utf-8")
    links = requirement_links(spec)
    assert len(links) == 12
    assert links["test_loans.py::LoanLimitTests::test_a_member_holds_at_most_two_books"] == ["R4"]
    assert links["fines/test_fines.py::FineTests::test_ten_cents_a_day_late"] == ["R5"]


def run_acceptance(spec: Any, root: Path, fines: str | None = None) -> dict[str, str]:
    """Run the spec's acceptance files with pytest against the reference ``library``."""
    for test in spec.acceptance_tests:
        target = root / "acceptance" / test.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(test.content, encoding="utf-8")
    for module in LIBRARY_IMPL.iterdir():
        if module.suffix == ".py":
            text = module.read_text(encoding="utf-8")
            if fines is not None and module.name == "fines.py":
                text = fines
            (root / "library").mkdir(parents=True, exist_ok=True)
            (root / "library" / module.name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "acceptance", "-rA", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes = {}
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition(" acceptance/")
        if kind in ("PASSED", "FAILED") and rest:
            outcomes[rest.split(" - ", 1)[0]] = kind.lower()
    return outcomes


def test_unittest_suite_runs_under_pytest_and_its_outcomes_prove_the_requirements(
    tmp_path: Path,
) -> None:
    spec = load_spec(LIBRARY)
    outcomes = run_acceptance(spec, tmp_path / "good")
    assert set(outcomes) == set(requirement_links(spec))  # the keys are pytest's node ids
    assert set(outcomes.values()) == {"passed"}
    assert all(r["passed"] is True for r in requirement_matrix(spec, outcomes))

    wrong = (
        (LIBRARY_IMPL / "fines.py")
        .read_text(encoding="utf-8")
        .replace("CENTS_PER_DAY = 10", "CENTS_PER_DAY = 20")
    )
    outcomes = run_acceptance(spec, tmp_path / "bad", fines=wrong)
    assert outcomes["fines/test_fines.py::FineTests::test_ten_cents_a_day_late"] == "failed"
    rows = {r["id"]: r["passed"] for r in requirement_matrix(spec, outcomes)}
    assert rows == {"R1": True, "R2": True, "R3": True, "R4": True, "R5": False}
