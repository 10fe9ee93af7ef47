"""``darkfactory.engine.docs_check``: finding the examples in Markdown, running them and building the
site in a real bwrap sandbox, and reading mkdocs' log; plus the two tech writer tools."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from runhelp import NEEDS_BWRAP

from darkfactory.engine.docs_check import (
    DocsCheck,
    Example,
    build_site,
    check_docs,
    extract_examples,
    find_examples,
    parse_build_output,
    run_example,
)
from darkfactory.sandbox import open_sandbox
from darkfactory.sandbox.base import Limits, Sandbox, SandboxSpec
from darkfactory.tools import build_tool
from darkfactory.workspace.context import RunContext

needs_bwrap = NEEDS_BWRAP

MODULE = '''"""Tiny greeting module."""


def greet(name: str) -> str:
    """Say hello to ``name``."""
    return f"hello {name}"


def shout(text: str) -> str:
    """``text`` in capitals."""
    return text.upper()
'''
MKDOCS_YML = """\
site_name: greet
theme:
  name: material
plugins:
  - search
  - mkdocstrings:
      handlers:
        python:
          paths: [.]
nav:
  - Home: index.md
  - API: api.md
"""


def md(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- extraction --------------------------------------------------------------------------
def test_python_and_doctest_blocks_are_found_with_their_lines() -> None:
    text = md(
        """
        # Title

        ```python
        print("script")
        ```

        ```py title="x.py"
        x = 1
        ```

        ```pycon
        >>> 1 + 1
        2
        ```

        ```
        >>> "bare fence"
        'bare fence'
        ```

        ```python
        >>> 2 * 3
        6
        ```
        """
    )
    found = extract_examples(text, "README.md")
    assert [(e.where, e.kind) for e in found.examples] == [
        ("README.md:4", "python"),
        ("README.md:8", "python"),
        ("README.md:12", "doctest"),
        ("README.md:17", "doctest"),
        ("README.md:22", "doctest"),
    ]
    assert found.examples[0].code == 'print("script")\n'
    assert found.skipped == []


def test_other_languages_and_plain_blocks_are_not_run() -> None:
    text = md(
        """
        ```sh
        python -m app
        ```

        ```text
        >>> looks like a prompt but is text
        ```

        ```
        plain output
        ```

        ```pycon
        no prompt here
        ```
        """
    )
    assert extract_examples(text, "x.md").examples == []


def test_no_run_marker_skips_only_the_next_block() -> None:
    text = md(
        """
        <!-- no-run -->

        ```python
        open("data.csv")
        ```

        ```python
        print("runs")
        ```

        <!--no-run-->
        ```pycon
        >>> input()
        ```
        """
    )
    found = extract_examples(text, "docs/a.md")
    assert [e.where for e in found.examples] == ["docs/a.md:8"]
    assert found.skipped == ["docs/a.md:4", "docs/a.md:13"]


def test_indented_tilde_and_long_fences() -> None:
    text = md(
        """
        1. Step one:

            ```python
            if True:
                print("indented")
            ```

        ~~~python
        print("tilde")
        ~~~

        ````python
        s = '''
        ```
        '''
        ````

        ```python
        print("never closed")
        """
    )
    found = extract_examples(text, "x.md")
    assert [e.code for e in found.examples] == [
        'if True:\n    print("indented")\n',
        'print("tilde")\n',
        "s = '''\n```\n'''\n",
        'print("never closed")\n',
    ]


def test_find_examples_reads_readme_and_docs_only(tmp_path: Path) -> None:
    (tmp_path / "docs" / "guide").mkdir(parents=True)
    block = "```python\nprint(1)\n```\n"
    (tmp_path / "README.md").write_text(block)
    (tmp_path / "DESIGN.md").write_text(block)  # not documentation for users
    (tmp_path / "docs" / "index.md").write_text(block)
    (tmp_path / "docs" / "guide" / "more.md").write_text("text\n\n" + block)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.md"
    outside.write_text(block)
    (tmp_path / "docs" / "link.md").symlink_to(outside)
    found = find_examples(tmp_path)
    assert [e.where for e in found.examples] == [
        "README.md:2",
        "docs/guide/more.md:4",
        "docs/index.md:2",
    ]


# -- mkdocs' log ----------------------------------------------------------------------------
def test_build_log_is_split_into_warnings_and_errors() -> None:
    log = (
        "INFO    -  Cleaning site directory\n"
        "INFO    -  The following pages exist in the docs directory, but are not included "
        'in the "nav" configuration:\n'
        "  - extra.md\n"
        "\x1b[33mWARNING \x1b[0m-  Doc file 'index.md' contains a link 'nope.md', but the "
        "target is not found among documentation files.\n"
        "ERROR   -  mkdocstrings: accessing 'nosuch' raises ModuleNotFoundError\n"
        "ERROR   -  Error reading page 'api.md':\n"
        "Error: MkDocs encountered an error parsing the configuration file: while parsing\n"
        '  in "mkdocs.yml", line 3, column 1\n'
        "\n"
        "Aborted with 1 warnings in strict mode!\n"
    )
    warnings, errors = parse_build_output(log)
    assert warnings == [
        "WARNING - Doc file 'index.md' contains a link 'nope.md', but the target is not "
        "found among documentation files."
    ]
    assert errors == [
        "ERROR - mkdocstrings: accessing 'nosuch' raises ModuleNotFoundError",
        "ERROR - Error reading page 'api.md':",
        "Error: MkDocs encountered an error parsing the configuration file: while parsing\n"
        '  in "mkdocs.yml", line 3, column 1',
    ]


# -- in the sandbox ------------------------------------------------------------------------
@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "docs").mkdir(parents=True)
    (ws / "greet.py").write_text(MODULE)
    (ws / "mkdocs.yml").write_text(MKDOCS_YML)
    (ws / "docs" / "index.md").write_text("# greet\n\nSee the [API](api.md).\n")
    (ws / "docs" / "api.md").write_text("# API\n\n::: greet\n")
    return ws


def sandbox_for(ws: Path, timeout_s: float = 60) -> Sandbox:
    return open_sandbox("bwrap", SandboxSpec(workspace=ws, limits=Limits(timeout_s=timeout_s)))


def example(code: str, kind: str = "python", file: str = "README.md", line: int = 3) -> Example:
    return Example(file, line, kind, md(code))  # type: ignore[arg-type]


@needs_bwrap
def test_script_example_imports_the_workspace_and_reports_tracebacks(workspace: Path) -> None:
    sandbox = sandbox_for(workspace)
    ok = run_example(
        sandbox,
        example(
            """
            import subprocess, sys
            from greet import greet
            assert greet("ada") == "hello ada"
            out = subprocess.run([sys.executable, "-c", "import greet; print(greet.shout('x'))"],
                                 capture_output=True, text=True)
            assert out.stdout == "X\\n", out.stderr
            print("done")
            """
        ),
    )
    assert ok.passed and ok.outcome == "passed", ok.output()
    assert ok.exec.stdout == "done\n"
    bad = run_example(sandbox, example("from greet import greet\n\ngreet()\n", line=10))
    assert not bad.passed and bad.outcome == "failed"
    out = bad.output()
    # The traceback points into the Markdown file, at the block's real line, and shows it.
    assert 'File "README.md", line 12, in <module>' in out
    assert "TypeError: greet() missing 1 required positional argument: 'name'" in out
    assert "_docsite_driver" not in out and "exec(code" not in out


@needs_bwrap
def test_exit_status_decides_and_files_written_stay_out_of_the_workspace(
    workspace: Path,
) -> None:
    sandbox = sandbox_for(workspace)
    before = sorted(p.name for p in workspace.iterdir())
    wrote = run_example(
        sandbox,
        example(
            """
            from pathlib import Path
            Path("notes.txt").write_text("x")
            Path("greet.py").write_text("broken(")
            assert Path("notes.txt").read_text() == "x"
            """
        ),
    )
    assert wrote.passed, wrote.output()
    assert sorted(p.name for p in workspace.iterdir()) == before
    assert (workspace / "greet.py").read_text() == MODULE
    assert run_example(sandbox, example("raise SystemExit(0)\n")).passed
    assert not run_example(sandbox, example("raise SystemExit(2)\n")).passed


@needs_bwrap
def test_doctest_example_shows_expected_and_got(workspace: Path) -> None:
    sandbox = sandbox_for(workspace)
    good = run_example(
        sandbox,
        example(
            """
            >>> from greet import greet, shout
            >>> greet("bob")
            'hello bob'
            >>> list(range(20))
            [0, 1, ..., 19]
            """,
            kind="doctest",
        ),
    )
    assert good.passed, good.output()
    bad = run_example(
        sandbox,
        example(">>> from greet import shout\n>>> shout('a')\n'a'\n", kind="doctest", line=7),
    )
    assert not bad.passed
    out = bad.output()
    assert 'File "README.md", line 8' in out
    assert "Expected:\n    'a'\nGot:\n    'A'" in out


@needs_bwrap
def test_an_example_that_hangs_is_killed_by_the_time_limit(workspace: Path) -> None:
    result = run_example(sandbox_for(workspace), example("while True:\n    pass\n"), timeout=1)
    assert result.exec.killed == "timeout" and result.outcome == "killed"
    assert "time limit" in result.output()


@needs_bwrap
def test_site_builds_strictly_with_the_api_reference(workspace: Path) -> None:
    result = build_site(sandbox_for(workspace))
    assert result.built, result.problems()
    assert result.pages == ["api/index.html", "index.html"]
    assert result.warnings == [] and result.errors == []
    assert result.summary() == "mkdocs build --strict: OK, 2 pages (api/index.html, index.html)."
    assert not (workspace / "site").exists()


@needs_bwrap
def test_broken_link_missing_module_and_bad_config_fail_the_build(workspace: Path) -> None:
    sandbox = sandbox_for(workspace)
    (workspace / "docs" / "index.md").write_text("# greet\n\nSee [usage](usage.md).\n")
    broken = build_site(sandbox)
    assert not broken.built and broken.exit_code == 1
    assert broken.warnings == [
        "WARNING - Doc file 'index.md' contains a link 'usage.md', but the target is not "
        "found among documentation files."
    ]
    assert "mkdocs build --strict: FAILED (0 errors, 1 warnings)" in broken.summary()

    (workspace / "docs" / "index.md").write_text("# greet\n")
    (workspace / "docs" / "api.md").write_text("# API\n\n::: greeting\n")
    missing = build_site(sandbox)
    assert not missing.built
    assert any("Could not collect 'greeting'" in e for e in missing.errors), missing.errors

    (workspace / "mkdocs.yml").write_text("site_name: x\nnav: [\n")
    bad_yaml = build_site(sandbox)
    assert not bad_yaml.built
    assert bad_yaml.errors[0].startswith("Error: MkDocs encountered an error parsing")

    (workspace / "mkdocs.yml").unlink()
    none = build_site(sandbox)
    assert not none.built and none.config is None
    assert "no mkdocs.yml in the workspace root" in none.errors[0]


@needs_bwrap
def test_check_docs_combines_build_and_examples_into_the_writer_text(workspace: Path) -> None:
    (workspace / "README.md").write_text(
        md(
            """
            # greet

            ```python
            from greet import greet
            print(greet("x"))
            ```

            ```pycon
            >>> from greet import shout
            >>> shout("a")
            'a'
            ```

            <!-- no-run -->
            ```python
            import missing_module
            ```
            """
        )
    )
    (workspace / "docs" / "index.md").write_text("# greet\n\n[gone](gone.md)\n")
    check = check_docs(sandbox_for(workspace), workspace)
    assert not check.passed and not check.build.built
    assert [r.outcome for r in check.examples] == ["passed", "failed"]
    assert check.skipped == ["README.md:16"]
    text = check.failures_text()
    assert text.startswith("mkdocs build --strict: FAILED (0 errors, 1 warnings)\nWARNING - ")
    assert "contains a link 'gone.md'" in text
    assert "Examples: 2 run, 1 passed, 1 failed, 1 marked no-run." in text
    assert "FAILED README.md:9 (doctest example):" in text
    assert check.problems() == [
        "WARNING - Doc file 'index.md' contains a link 'gone.md', but the target is not "
        "found among documentation files.",
        "README.md:9: doctest example failed",
    ]
    state = check.to_state(0).model_dump()
    assert state["examples_run"] == 2 and state["examples_passed"] == 1
    assert state["failed_examples"] == [{"file": "README.md", "line": 9, "kind": "doctest"}]
    assert len(check.failures_text(600)) <= 600


def test_failures_text_stays_within_its_budget() -> None:
    from darkfactory.engine.docs_check import BuildResult, ExampleResult
    from darkfactory.sandbox.base import ExecResult

    failing = ExecResult(1, "", "Traceback\n" + "x" * 5000, 0.1)
    results = [
        ExampleResult(Example("README.md", n, "python", "1/0\n"), failing) for n in range(10)
    ]
    check = DocsCheck(BuildResult(ExecResult(0, "", "", 0.1)), results)
    text = check.failures_text(6000)
    assert len(text) <= 6000
    assert "FAILED README.md:0 (python example)" in text
    assert "more failing examples not shown]" in text


# -- the tools ---------------------------------------------------------------------------------
@needs_bwrap
def test_build_docs_tool_reports_warnings_and_emits_the_exec(workspace: Path) -> None:
    events: list[tuple[str, dict[str, object]]] = []
    ctx = RunContext(
        workspace=workspace,
        sandbox=sandbox_for(workspace),
        on_event=lambda kind, data: events.append((kind, data)),
    )
    tool = build_tool("build_docs", ctx)
    assert tool._run().startswith("mkdocs build --strict: OK, 2 pages")
    (workspace / "mkdocs.yml").write_text(MKDOCS_YML + "  - Usage: usage.md\n")
    out = tool._run()
    assert out.startswith("mkdocs build --strict: FAILED")
    assert "A reference to 'usage.md' is included in the 'nav' configuration" in out
    assert [(k, d["tool"], d["argv"]) for k, d in events] == [
        ("sandbox_exec", "build_docs", ["mkdocs", "build", "--strict"]),
    ] * 2


@needs_bwrap
def test_run_doc_examples_tool_runs_all_or_the_files_named(workspace: Path) -> None:
    (workspace / "README.md").write_text("```python\nprint('ok')\n```\n")
    (workspace / "docs" / "index.md").write_text(
        "# greet\n\n```pycon\n>>> from greet import greet\n>>> greet('a')\n'hi a'\n```\n"
    )
    events: list[tuple[str, dict[str, object]]] = []
    ctx = RunContext(
        workspace=workspace,
        sandbox=sandbox_for(workspace),
        on_event=lambda kind, data: events.append((kind, data)),
    )
    tool = build_tool("run_doc_examples", ctx)
    out = tool._run()
    assert out.startswith("Examples: 2 run, 1 passed, 1 failed.")
    assert "FAILED docs/index.md:4 (doctest example):" in out and "'hello a'" in out
    assert [d["argv"] for _, d in events] == [
        ["python", "README.md:2"],
        ["doctest", "docs/index.md:4"],
    ]
    assert tool._run(files=["README.md"]).startswith("Examples: 1 run, 1 passed, 0 failed.")
    assert tool._run(files=["DESIGN.md"]).startswith("No runnable examples found in DESIGN.md")
    assert tool._run(files=["../etc/passwd"]).startswith("ERROR: ")


@needs_bwrap
def test_a_sandbox_python_without_mkdocs_is_an_error_not_a_docs_problem(
    workspace: Path,
) -> None:
    from darkfactory.engine.docs_check import DocsToolingMissing
    from darkfactory.sandbox.bwrap import BwrapSandbox

    bare = Path("/usr/bin/python3")
    probe = subprocess.run([str(bare), "-c", "import mkdocs"], capture_output=True)
    if not bare.is_file() or probe.returncode == 0:
        pytest.skip("needs a system python3 without mkdocs")
    sandbox = BwrapSandbox(SandboxSpec(workspace=workspace), python=str(bare))
    with pytest.raises(DocsToolingMissing, match="it lacks mkdocs, material, mkdocstrings"):
        build_site(sandbox)
    tool = build_tool("build_docs", RunContext(workspace=workspace, sandbox=sandbox))
    assert tool._run().startswith("ERROR: the sandbox's Python cannot build docs")
