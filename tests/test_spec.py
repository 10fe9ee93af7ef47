"""Spec intake: each format becomes the right requirements; every mistake is a clear SpecError."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from darkfactory.errors import ExitCode, SpecError
from darkfactory.spec import (
    Spec,
    detect_format,
    load_spec,
    requirement_links,
    requirement_matrix,
)
from darkfactory.spec.model import AcceptanceTest, Requirement, SourceRef


def write(dir: Path, name: str, text: str) -> Path:
    path = dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def reqs(spec: Spec) -> list[tuple[str, str, int | None]]:
    return [(r.id, r.text, r.source.line if r.source else None) for r in spec.requirements]


def spec_error(path: Path, **kwargs: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path, **kwargs)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    return info.value


# -- markdown and text -------------------------------------------------------------------

MARKDOWN = """
    # Word count

    A small CLI that counts words
    in text files.

    ## Requirements

    - Counts the words of each file given on the command line
    - Prints a total line
      when more than one file is given
    1. [x] Exits with status 0 on success

    ## Output

    - one line per file
    - Output lines are tab separated

    The tool should exit 1 when a file is missing. It may print colours.
    The tool must support these options:

    - `-l` counts lines

    ## Options

    * The CLI accepts flags:
      * `--words` counts words

    ```python
    - not a requirement: it must be ignored
    ```

    ## Out of scope

    - Unicode normalisation
    The tool must not be in scope.

    ### Later

    - also out of scope

    ## Notes

    - Counts the words of each file given on the command line.
"""


def test_markdown_title_summary_and_requirements_with_lines(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "wc.md", MARKDOWN))
    assert spec.format == "markdown"
    assert spec.title == "Word count"
    assert spec.summary == "A small CLI that counts words in text files."
    assert spec.source == str(tmp_path / "wc.md")
    assert reqs(spec) == [
        ("R1", "Counts the words of each file given on the command line", 8),
        ("R2", "Prints a total line when more than one file is given", 9),
        ("R3", "Exits with status 0 on success", 11),
        # a terse bullet keeps its section; one that names the section does not repeat it
        ("R4", "Output: one line per file", 15),
        ("R5", "Output lines are tab separated", 16),
        # prose sentences with must/shall/should, as written; the lead-in sentence is skipped
        ("R6", "The tool should exit 1 when a file is missing.", 18),
        ("R7", "Output: `-l` counts lines", 21),
        # a nested item is prefixed with its lead-in item; code, out of scope and the
        # repeated R1 under "Notes" give nothing
        ("R8", "Options: The CLI accepts flags: `--words` counts words", 26),
    ]
    assert all(r.source and r.source.file == str(tmp_path / "wc.md") for r in spec.requirements)


def test_text_spec_uses_the_file_name_and_modal_sentences(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "word_count-tool.txt",
        """
        The program shall count words.
        It should handle e.g. empty files. It is small.
        Also it must count
        lines.
        """,
    )
    spec = load_spec(path)
    assert spec.format == "text"
    assert spec.title == "Word count tool"
    assert reqs(spec) == [
        ("R1", "The program shall count words.", 1),
        ("R2", "It should handle e.g. empty files.", 2),
        ("R3", "Also it must count lines.", 3),
    ]


def test_setext_title_and_front_matter_without_ticket_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "notes.md",
        """
        ---
        author: someone
        ---
        Counter
        =======

        - counts
        """,
    )
    spec = load_spec(path)
    assert (spec.format, spec.title, reqs(spec)) == ("markdown", "Counter", [("R1", "counts", 7)])


def test_format_override(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.txt", "# Title\n\n- one\n")
    assert load_spec(path).format == "text"
    assert load_spec(path, format="markdown").format == "markdown"
    yaml_in_txt = write(tmp_path, "ticket.txt", "title: T\nacceptance_criteria: [a]\n")
    assert reqs(load_spec(yaml_in_txt, format="ticket")) == [("R1", "a", 2)]


def test_detect_format(tmp_path: Path) -> None:
    assert detect_format(write(tmp_path, "a.yaml", "title: x\n")) == "ticket"
    assert detect_format(write(tmp_path, "a.yml", "title: x\n")) == "ticket"
    assert detect_format(write(tmp_path, "a.md", "---\ntitle: x\n---\nbody\n")) == "ticket"
    assert (
        detect_format(write(tmp_path, "b.md", "---\nacceptance_criteria: [a]\n---\n")) == "ticket"
    )
    assert detect_format(write(tmp_path, "c.markdown", "# x\n")) == "markdown"
    assert detect_format(write(tmp_path, "d.md", "---\ntags: [a]\n---\n# x\n")) == "markdown"
    assert detect_format(write(tmp_path, "e.txt", "x must y\n")) == "text"
    assert detect_format(write(tmp_path, "SPEC", "x must y\n")) == "text"


# -- tickets ---------------------------------------------------------------------------

TICKET = """
    title: Word count
    description: |
      Counts words.
      Fast.
    acceptance_criteria:
      - Counts words
      - given: a file with three words.
        when: I run wc on it
        then: it prints 3
      - when: no file is given
        then: it reads stdin
      - id: AC-exit
        text: Exits 0
    acceptance_tests:
      - acc
      - checks/test_one.py
      - name: inline/test_inline.py
        code: |
          import pytest

          def test_r1_inline():
              pass
    examples:
      - input: a b c
        output: "3"
"""


def ticket_dir(tmp_path: Path) -> Path:
    write(tmp_path, "acc/test_a.py", "def test_r2_a():\n    pass\n")
    write(tmp_path, "acc/sub/test_b.py", "def test_b():\n    pass\n")
    write(tmp_path, "acc/helper.py", "X = 1\n")  # not a test file: not taken
    write(tmp_path, "checks/test_one.py", "def test_one():\n    pass\n")
    return write(tmp_path, "ticket.yaml", TICKET)


def test_yaml_ticket(tmp_path: Path) -> None:
    spec = load_spec(ticket_dir(tmp_path))
    assert spec.format == "ticket"
    assert spec.title == "Word count"
    assert spec.summary == "Counts words.\nFast."
    assert reqs(spec) == [
        ("R1", "Counts words", 6),
        ("R2", "Given a file with three words, when I run wc on it, then it prints 3", 7),
        ("R3", "When no file is given, then it reads stdin", 10),
        ("AC-exit", "Exits 0", 12),
    ]
    tests = {t.name: t for t in spec.acceptance_tests}
    assert list(tests) == ["sub/test_b.py", "test_a.py", "test_one.py", "inline/test_inline.py"]
    assert tests["test_a.py"].content == "def test_r2_a():\n    pass\n"
    assert tests["test_a.py"].source == SourceRef(file=str(tmp_path / "acc" / "test_a.py"), line=1)
    inline = tests["inline/test_inline.py"]
    assert inline.content.startswith("import pytest\n")
    assert inline.source == SourceRef(file=str(tmp_path / "ticket.yaml"), line=19)


def test_ticket_with_code_string(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yml",
        """
        title: T
        acceptance_tests: |
          def test_x():
              assert 1
        """,
    )
    spec = load_spec(path)
    assert spec.requirements == []
    assert [(t.name, t.source.line if t.source else None) for t in spec.acceptance_tests] == [
        ("test_acceptance.py", 3)
    ]


def test_markdown_ticket_body_is_the_description(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ticket.md",
        """
        ---
        title: Word count
        acceptance_criteria:
          - Counts words
        ---
        Counts the words
        of a file.
        """,
    )
    spec = load_spec(path)
    assert (spec.format, spec.title, spec.summary) == (
        "ticket",
        "Word count",
        "Counts the words\nof a file.",
    )
    assert reqs(spec) == [("R1", "Counts words", 4)]


# -- errors ------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    err = spec_error(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(err) and "not found" in str(err)
    err = spec_error(tmp_path)
    assert str(tmp_path) in str(err) and "directory" in str(err)


@pytest.mark.parametrize("text", ["", "  \n\t\n"])
def test_empty_spec(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.md"
    path.write_text(text)
    assert f"{path}:1: the spec is empty" in str(spec_error(path))


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_bytes(b"The tool must work.\n\xff\xfe bad\n")
    err = spec_error(path)
    assert f"{path}:2: not UTF-8" in str(err)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yaml", "title: T\nacceptance_criteria:\n  - a\n - b\n")
    err = spec_error(path)
    assert str(err).startswith(f"{path}:4: invalid YAML")


def test_malformed_front_matter_names_the_file_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.md", "---\ntitle: [T\n---\nbody\n")
    err = spec_error(path)
    assert str(err).startswith(f"{path}:") and "invalid YAML" in str(err)
    assert err.line is not None and 2 <= err.line <= 3


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("description: x\nacceptance_criteria: [a]\n", 1, "title", "no title"),
        ("title: T\ndescription: x\n", 1, None, "no acceptance_criteria and no acceptance_tests"),
        ("title: T\nacceptance_criteria: []\n", 1, None, "no acceptance_criteria"),
        (
            "title: T\nacceptance_critera:\n  - a\n",
            2,
            "acceptance_critera",
            "did you mean 'acceptance_criteria'",
        ),
        ("title: 42\nacceptance_criteria: [a]\n", 1, "title", "must be text, got a number"),
        (
            "title: T\nacceptance_criteria: Counts words\n",
            2,
            "acceptance_criteria",
            "must be a list",
        ),
        (
            "title: T\nacceptance_criteria:\n  - a\n  - yes\n",
            4,
            "acceptance_criteria.1",
            "booleans",
        ),
        (
            "title: T\nacceptance_criteria:\n  - Given a file: it works\n",
            3,
            "acceptance_criteria.0.Given a file",
            "quotes",
        ),
        (
            "title: T\nacceptance_criteria:\n  - given: x\n",
            3,
            "acceptance_criteria.0",
            "needs text, or when and then",
        ),
        (
            "title: T\nacceptance_criteria:\n  - a\n  - id: R1\n    text: b\n",
            4,
            "acceptance_criteria.1",
            "R1 is used twice (lines 3 and 4)",
        ),
        (
            "title: T\nacceptance_criteria: [a]\nacceptance_tests: 3\n",
            3,
            "acceptance_tests",
            "must be pytest code or a list",
        ),
        ("- title: T\n", 1, None, "must be a mapping"),
    ],
)
def test_ticket_errors(tmp_path: Path, text: str, line: int, key: str | None, words: str) -> None:
    path = write(tmp_path, "t.yaml", text)
    err = spec_error(path)
    assert (err.file, err.line, err.key) == (str(path), line, key)
    assert words in str(err)
    assert str(err).startswith(f"{path}:{line}: ")


def test_no_requirement_in_prose_says_how_to_write_one(tmp_path: Path) -> None:
    path = write(tmp_path, "s.md", "# Title\n\nJust some words.\n\n## Out of scope\n\n- x\n")
    err = spec_error(path)
    assert str(path) in str(err) and "no requirement found" in str(err)
    assert err.hint and "must, shall or should" in err.hint and "list item" in err.hint


def test_inline_syntax_error_maps_to_the_spec_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        """
        title: T
        acceptance_criteria: [a]
        acceptance_tests:
          - name: test_x.py
            code: |
              def test_ok():
                  pass

              def test_bad(:
                  pass
        """,
    )
    err = spec_error(path)
    assert str(err).startswith(f"{path}:9: ")
    assert "test_x.py is not valid Python" in str(err) and "line 4 of the test" in str(err)


def test_syntax_error_in_a_test_file_names_that_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "acc/test_bad.py", "x = 1\nif x\n")
    path = write(tmp_path, "t.yaml", "title: T\nacceptance_tests: [acc]\n")
    err = spec_error(path)
    assert err.file == str(bad) and err.line == 2 and "not valid Python" in str(err)


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("missing/test_x.py", "does not exist"),
        ("../outside/test_x.py", "outside the spec's directory"),
        ("/etc", "outside the spec's directory"),
        ("empty", "has no test_*.py files"),
        ("checks.py", "must be named test_*.py"),
    ],
)
def test_acceptance_test_path_errors(tmp_path: Path, item: str, words: str) -> None:
    specs = tmp_path / "specs"
    write(tmp_path, "outside/test_x.py", "def test_x():\n    pass\n")
    write(specs, "checks.py", "def test_x():\n    pass\n")
    (specs / "empty").mkdir()
    path = write(
        specs, "t.yaml", f"title: T\nacceptance_criteria: [a]\nacceptance_tests:\n  - {item}\n"
    )
    err = spec_error(path)
    assert (err.file, err.line, err.key) == (str(path), 4, "acceptance_tests.0")
    assert words in str(err)


@pytest.mark.parametrize(
    "name", ["x.py", "test_x", "../test_x.py", "a/../test_x.py", "/abs/test_x.py", "a b/test_x.py"]
)
def test_unsafe_inline_test_names(tmp_path: Path, name: str) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        f"title: T\nacceptance_tests:\n  - name: '{name}'\n    code: 'def test_x(): pass'\n",
    )
    err = spec_error(path)
    assert err.line == 3 and "not a safe test file name" in str(err)


def test_unknown_format(tmp_path: Path) -> None:
    path = write(tmp_path, "s.md", "- a\n")
    assert "unknown spec format 'pdf'" in str(spec_error(path, format="pdf"))


# -- requirement links and matrix --------------------------------------------------------


def make_spec(code: str, n: int = 3) -> Spec:
    return Spec(
        format="ticket",
        title="T",
        requirements=[Requirement(id=f"R{i}", text=f"req {i}") for i in range(1, n + 1)],
        acceptance_tests=[
            AcceptanceTest(
                name="test_acc.py",
                content=textwrap.dedent(code),
                source=SourceRef(file="spec.yaml", line=10),
            )
        ],
        source="spec.yaml",
    )


LINKED = """
    import pytest
    from pytest import mark

    @pytest.mark.req("R1", "r2")
    def test_marked():
        pass

    def test_r3_by_name():
        pass

    def test_R1_r3_both():
        pass

    @mark.req("R2")
    def test_r1_mark_and_name():
        pass

    def test_unlinked():
        pass

    def helper_r1():
        pass

    @pytest.mark.req("R3")
    class TestThing:
        def test_method(self):
            pass

        @pytest.mark.parametrize("x", [1, 2])
        def test_r1_param(self, x):
            pass

        class TestInner:
            pytestmark = [pytest.mark.req("R2")]

            def test_deep(self):
                pass
"""


def test_requirement_links_by_marker_and_by_name() -> None:
    assert requirement_links(make_spec(LINKED)) == {
        "test_acc.py::test_marked": ["R1", "R2"],
        "test_acc.py::test_r3_by_name": ["R3"],
        "test_acc.py::test_R1_r3_both": ["R1", "R3"],
        "test_acc.py::test_r1_mark_and_name": ["R2", "R1"],
        "test_acc.py::test_unlinked": [],
        "test_acc.py::TestThing::test_method": ["R3"],
        "test_acc.py::TestThing::test_r1_param": ["R3", "R1"],
        "test_acc.py::TestThing::TestInner::test_deep": ["R3", "R2"],
    }


def test_module_pytestmark_applies_to_every_test() -> None:
    code = 'import pytest\npytestmark = pytest.mark.req("R2")\n\ndef test_a():\n    pass\n'
    assert requirement_links(make_spec(code)) == {"test_acc.py::test_a": ["R2"]}


@pytest.mark.parametrize(
    ("code", "line", "ref"),
    [
        ("def test_ok():\n    pass\n\ndef test_r9_missing():\n    pass\n", 13, "R9"),
        ('import pytest\n\n@pytest.mark.req("R1", "R4")\ndef test_x():\n    pass\n', 12, "R4"),
    ],
)
def test_unknown_requirement_is_an_error_naming_test_and_file(
    code: str, line: int, ref: str
) -> None:
    with pytest.raises(SpecError) as info:
        requirement_links(make_spec(code))
    err = info.value
    assert (err.file, err.line) == ("spec.yaml", line)
    assert "test_acc.py::test_" in str(err) and f"requirement {ref}" in str(err)
    assert err.hint and "R1, R2, R3" in err.hint


def test_links_in_a_loaded_ticket(tmp_path: Path) -> None:
    spec = load_spec(ticket_dir(tmp_path))
    assert requirement_links(spec) == {
        "sub/test_b.py::test_b": [],
        "test_a.py::test_r2_a": ["R2"],
        "test_one.py::test_one": [],
        "inline/test_inline.py::test_r1_inline": ["R1"],
    }


def test_requirement_matrix_semantics() -> None:
    code = """
        import pytest

        def test_r1_a():
            pass

        @pytest.mark.parametrize("x", [1, 2])
        def test_r2_param(x):
            pass

        def test_r3_ran():
            pass

        def test_r3_not_run():
            pass
    """
    spec = make_spec(code, n=4)
    outcomes = {
        "test_acc.py::test_r1_a": "passed",
        "test_acc.py::test_r2_param[1]": "passed",
        "test_acc.py::test_r2_param[2]": "failed",
        "test_acc.py::test_r3_ran": "passed",
    }
    rows = requirement_matrix(spec, outcomes)
    assert [(r["id"], r["tests"], r["passed"], r["status"]) for r in rows] == [
        ("R1", ["test_acc.py::test_r1_a"], True, "passed"),
        ("R2", ["test_acc.py::test_r2_param"], False, "failed"),
        # one of its tests did not run while the other did: no proof, so failed
        ("R3", ["test_acc.py::test_r3_ran", "test_acc.py::test_r3_not_run"], False, "failed"),
        ("R4", [], None, "no test"),
    ]
    # none of a requirement's tests ran (the run stopped before verify): not run, not failed
    assert [(r["passed"], r["status"]) for r in requirement_matrix(spec, {})] == [
        (None, "not run"),
        (None, "not run"),
        (None, "not run"),
        (None, "no test"),
    ]
    del outcomes["test_acc.py::test_r1_a"]
    assert requirement_matrix(spec, outcomes)[0]["status"] == "not run"
    outcomes["test_acc.py::test_r1_a"] = "passed"
    assert rows[0]["text"] == "req 1"
    outcomes["test_acc.py::test_r2_param[2]"] = "passed"
    outcomes["test_acc.py::test_r3_not_run"] = "passed"
    assert [r["passed"] for r in requirement_matrix(spec, outcomes)] == [True, True, True, None]
    # a requirement without tests is never reported as passed, whatever ran
    assert requirement_matrix(spec, {})[3]["passed"] is None
    assert requirement_matrix(spec, {"test_acc.py::test_r1_a": "skipped"})[0]["passed"] is False
    # the spec's reason for a requirement it cannot test travels with it to the report
    why = "the 500 response has no example to check"
    spec.requirements[3].untested_reason = why
    row = requirement_matrix(spec, {})[3]
    assert row["passed"] is None and row["untested_reason"] == why
    from darkfactory.reporting.report import render_markdown

    assert f"| R4 | req 4 | - | no test: {why} |" in render_markdown(_report_with([row]))


def _report_with(rows: list[Any]) -> dict[str, Any]:
    """The smallest report ``render_markdown`` takes, with these requirement rows."""
    zero = {"total": 0, "passed": 0, "failed": 0}
    llm = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "by_role": {}}
    return {
        "run_id": "r",
        "status": "failed",
        "reason": "",
        "spec": {"title": "t", "format": "text", "source": "s"},
        "acceptance": zero,
        "unit_tests": zero,
        "fix_rounds": 0,
        "docs": {"rounds": 0},
        "llm": llm,
        "scripted_model": False,
        "sandbox": "bwrap",
        "duration_s": 0,
        "workspace": "w",
        "requirements": rows,
        "verify_rounds": [],
        "checkpoints": [],
        "pending_checkpoint": None,
        "deploy": None,
        "timeline": [],
        "delegations": [],
    }


def test_plain_text_lead_in_is_neither_summary_nor_requirement(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "counter.txt",
        """
        Requirements:
        - count words
        - count lines

        A tiny counter.
        """,
    )
    spec = load_spec(path)
    assert spec.summary == "A tiny counter."
    assert reqs(spec) == [("R1", "count words", 2), ("R2", "count lines", 3)]
