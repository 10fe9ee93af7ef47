"""The generated project's documentation, checked like its code: built and executed.

Two checks, both in the run's sandbox (``_docsite_driver.py`` runs inside it):

- **build**: ``python -m mkdocs build --strict`` with the workspace's ``mkdocs.yml``, the
  site written to a temporary directory inside the sandbox (never the workspace). Strict
  mode turns every warning (a broken internal link, a nav entry without its page, an API
  reference ``::: module`` that cannot be collected) into a failure. The log is split into
  warnings and errors for the writer.
- **examples**: every fenced code block of ``README.md`` and ``docs/**/*.md`` that is
  Python runs, each on its own, in a scratch copy of the workspace with the sandbox's time
  limit: a ```` ```python ```` block as a script, a block whose first line starts with
  ``>>>`` (```` ```python ````, ```` ```pycon ````, or no language) with ``doctest``. A
  block right after a line ``<!-- no-run -->`` is not run.

``check_docs`` does both; the pipeline's docs check and the tech writer's tools
(``build_docs``, ``run_doc_examples``) call the same functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from darkfactory.engine.state import DocsRound, FailedExample
from darkfactory.errors import DarkFactoryError
from darkfactory.reporting.trace import Trace
from darkfactory.sandbox.base import ExecResult, Sandbox
from darkfactory.workspace import hostio

DRIVER = (Path(__file__).with_name("_docsite_driver.py")).read_text(encoding="utf-8")
#: The HTML comment that keeps the next code block from being run.
NO_RUN = "<!-- no-run -->"
#: Languages of blocks run as scripts / checked as doctests.
SCRIPT_LANGS = frozenset({"python", "py", "python3"})
DOCTEST_LANGS = frozenset({"pycon", "doctest"})
#: Largest Markdown file searched for examples.
MAX_DOC_BYTES = 1_000_000
#: Most characters of one example's output kept.
MAX_EXAMPLE_OUTPUT = 3000

ExampleKind = Literal["python", "doctest"]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_LANG = re.compile(r"^\s*\{?\s*\.?(?P<lang>[\w+-]*)")
_LOG = re.compile(r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+-\s+(?P<msg>.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NO_RUN = re.compile(r"^<!--\s*no-run\s*-->$")
_LIMIT_TEXT = {
    "timeout": "killed: it ran past the sandbox's time limit",
    "output": "killed: it printed more than the sandbox allows",
    "memory": "killed: it ran out of the sandbox's memory limit",
    "cpu": "killed: it used up the sandbox's CPU-time limit",
    "file_size": "killed: it wrote a file larger than the sandbox allows",
    "disk": "killed: the workspace grew past the sandbox's disk quota (sandbox.disk_mb)",
}


class DocsToolingMissing(DarkFactoryError):
    """The sandbox cannot build docs at all (no mkdocs): not something a writer can fix."""


# -- examples ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    """One runnable code block of a Markdown file."""

    file: str
    #: 1-based line of the block's first code line in ``file``.
    line: int
    kind: ExampleKind
    code: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Extracted:
    """The examples of some Markdown, and the Python blocks marked ``<!-- no-run -->``."""

    examples: list[Example]
    skipped: list[str]


def _kind(lang: str, code: str) -> ExampleKind | None:
    first = next((ln.strip() for ln in code.splitlines() if ln.strip()), "")
    is_doctest = first.startswith(">>>")
    if lang in SCRIPT_LANGS:
        return "doctest" if is_doctest else "python"
    if lang in DOCTEST_LANGS or lang == "":
        return "doctest" if is_doctest else None
    return None


def _dedent(line: str, indent: str) -> str:
    n = 0
    while n < len(indent) and n < len(line) and line[n] in " \t":
        n += 1
    return line[n:]


def extract_examples(text: str, file: str) -> Extracted:
    """The runnable code blocks of one Markdown text (``file`` names it in results)."""
    lines = text.splitlines()
    examples: list[Example] = []
    skipped: list[str] = []
    previous = ""  # the last non-blank line before the current one
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m.group("fence")[0] == "`" and "`" in m.group("info")):
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        fence, indent = m.group("fence"), m.group("indent")
        lang_match = _LANG.match(m.group("info"))
        lang = lang_match.group("lang").lower() if lang_match else ""
        start = i + 1
        end = start
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        code = "\n".join(_dedent(ln, indent) for ln in lines[start:end]) + "\n"
        kind = _kind(lang, code)
        if kind is not None:
            where = f"{file}:{start + 1}"
            if _NO_RUN.match(previous):
                skipped.append(where)
            else:
                examples.append(Example(file, start + 1, kind, code))
        previous = ""
        i = end + 1
    return Extracted(examples, skipped)


def doc_files(workspace: Path) -> list[str]:
    """``README.md`` and every ``docs/**/*.md`` of the workspace: regular files, no links."""
    found = ["README.md"] if hostio.is_file(workspace, "README.md") else []
    found += sorted(
        f"docs/{e.path}"
        for e in hostio.walk(workspace, "docs")
        if e.kind == "file" and e.path.endswith(".md") and e.size <= MAX_DOC_BYTES
    )
    return found


def find_examples(workspace: Path) -> Extracted:
    """Every runnable example of the workspace's docs, in file order."""
    examples: list[Example] = []
    skipped: list[str] = []
    for rel in doc_files(workspace):
        try:
            text = hostio.read_text(workspace, rel, limit=MAX_DOC_BYTES, errors="replace")
        except (hostio.Refused, FileNotFoundError):
            continue
        found = extract_examples(text, rel)
        examples += found.examples
        skipped += found.skipped
    return Extracted(examples, skipped)


@dataclass(frozen=True)
class ExampleResult:
    example: Example
    exec: ExecResult

    @property
    def passed(self) -> bool:
        return self.exec.exit_code == 0 and self.exec.killed is None

    @property
    def outcome(self) -> str:
        if self.exec.killed is not None:
            return "killed"
        return "passed" if self.passed else "failed"

    def output(self, max_chars: int = MAX_EXAMPLE_OUTPUT) -> str:
        text = (self.exec.stdout + self.exec.stderr).strip()
        if self.exec.killed is not None:
            text = f"{text}\n{_LIMIT_TEXT.get(self.exec.killed, 'killed by a limit')}".strip()
        return _cut(text, max_chars)


def run_example(sandbox: Sandbox, example: Example, timeout: float | None = None) -> ExampleResult:
    """Run one example in ``sandbox`` (the sandbox's time limit unless ``timeout``)."""
    argv = [sandbox.python, "-c", DRIVER, example.kind, example.file, str(example.line)]
    return ExampleResult(example, sandbox.run(argv, timeout=timeout, stdin=example.code))


# -- build --------------------------------------------------------------------------------
@dataclass
class BuildResult:
    """One ``mkdocs build --strict``: its log split into warnings and errors, its pages."""

    exec: ExecResult
    #: The config file used; None when the workspace has no ``mkdocs.yml``.
    config: str | None = None
    exit_code: int | None = None
    output: str = ""
    pages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def built(self) -> bool:
        return self.exec.killed is None and self.config is not None and self.exit_code == 0

    def problems(self) -> list[str]:
        """What failed the build, one entry per message (empty when it built)."""
        if self.built:
            return []
        return [*self.errors, *self.warnings]

    def summary(self, max_chars: int = 4000) -> str:
        """The result as the tech writer reads it: verdict, then every warning and error."""
        if self.built:
            shown = ", ".join(self.pages[:20]) + (" ..." if len(self.pages) > 20 else "")
            return f"mkdocs build --strict: OK, {len(self.pages)} pages ({shown})."
        head = f"mkdocs build --strict: FAILED ({len(self.errors)} errors, {len(self.warnings)} warnings)"
        return _cut("\n".join([head, *self.problems()]), max_chars)


def parse_build_output(output: str) -> tuple[list[str], list[str]]:
    """mkdocs' log as (warnings, errors); a message's continuation lines stay with it."""
    warnings: list[str] = []
    errors: list[str] = []
    current: list[str] | None = None  # the list the current message went to
    for raw in _ANSI.sub("", output).splitlines():
        line = raw.rstrip()
        m = _LOG.match(line)
        if m:
            level = m.group("level")
            target = (
                warnings
                if level == "WARNING"
                else errors
                if level in ("ERROR", "CRITICAL")
                else None
            )
            if target is not None:
                target.append(f"{level} - {m.group('msg').strip()}")
            current = target
        elif line.startswith(("Error: ", "Traceback (most recent call last)")):
            errors.append(line)
            current = errors
        elif line.startswith("Aborted with"):
            current = None
        elif current is not None and line.strip():
            current[-1] += "\n" + line
    return warnings, errors


def build_site(sandbox: Sandbox, timeout: float | None = None) -> BuildResult:
    """``mkdocs build --strict`` of the workspace in ``sandbox``; the site is thrown away."""
    result = sandbox.run([sandbox.python, "-c", DRIVER, "build"], timeout=timeout)
    report: dict[str, Any] | None = None
    if result.killed is None:
        for line in reversed(result.stdout.splitlines()):
            if line.startswith("{"):
                try:
                    report = json.loads(line)
                except ValueError:
                    continue
                break
    if report is None:
        what = _LIMIT_TEXT.get(result.killed or "", "the build driver failed")
        detail = (result.stderr or result.stdout).strip()
        return BuildResult(
            result, errors=[f"ERROR - {what}" + (f"\n{_cut(detail, 2000)}" if detail else "")]
        )
    if report.get("missing"):
        raise DocsToolingMissing(
            "the sandbox's Python cannot build docs: it lacks "
            + ", ".join(str(m) for m in report["missing"])
            + f" ({sandbox.backend} backend, python {sandbox.python}); the docs check needs "
            "mkdocs, mkdocs-material and mkdocstrings[python] where the generated code runs: "
            "Dark Factory's own environment for bwrap and local (pip install -e .), the "
            "image for docker"
        )
    if report.get("config") is None:
        return BuildResult(
            result,
            errors=[
                "ERROR - no mkdocs.yml in the workspace root: write one with site_name, "
                "theme, plugins and a nav listing every page under docs/"
            ],
        )
    output = str(report.get("output", ""))
    warnings, errors = parse_build_output(output)
    exit_code = int(report.get("exit_code", 1))
    if exit_code != 0 and not warnings and not errors:
        errors = [f"ERROR - mkdocs exited with {exit_code}:\n{_cut(output.strip(), 2000)}"]
    return BuildResult(
        result,
        config=str(report["config"]),
        exit_code=exit_code,
        output=output,
        pages=[str(p) for p in report.get("pages", [])],
        warnings=warnings,
        errors=errors,
    )


# -- both -----------------------------------------------------------------------------------
@dataclass
class DocsCheck:
    """One docs check: the strict build and every example."""

    build: BuildResult
    examples: list[ExampleResult]
    skipped: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.build.built and all(r.passed for r in self.examples)

    @property
    def examples_passed(self) -> int:
        return sum(1 for r in self.examples if r.passed)

    def failures_text(self, max_chars: int = 6000) -> str:
        """Every problem, verbatim and compact: what the tech writer must fix."""
        build = self.build.summary(max_chars // 2)
        return (
            build
            + "\n\n"
            + examples_summary(self.examples, self.skipped, max_chars - len(build) - 2)
        )

    def problems(self) -> list[str]:
        """One line per problem (report.json)."""
        lines = [p.splitlines()[0] for p in self.build.problems()]
        lines += [
            f"{r.example.where}: {r.example.kind} example {r.outcome}"
            for r in self.examples
            if not r.passed
        ]
        return lines

    def to_state(self, round_no: int) -> DocsRound:
        return DocsRound(
            round=round_no,
            passed=self.passed,
            built=self.build.built,
            pages=list(self.build.pages),
            warnings=list(self.build.warnings),
            errors=list(self.build.errors),
            examples_run=len(self.examples),
            examples_passed=self.examples_passed,
            examples_skipped=list(self.skipped),
            failed_examples=[
                FailedExample(file=r.example.file, line=r.example.line, kind=r.example.kind)
                for r in self.examples
                if not r.passed
            ],
            problems=self.problems(),
        )


def examples_summary(
    results: list[ExampleResult], skipped: list[str], max_chars: int = 6000
) -> str:
    """How many examples ran and passed, then each failing one with its output."""
    failed = [r for r in results if not r.passed]
    ran = ", ".join(f"{r.example.where} {r.outcome}" for r in results[:20])
    parts = [
        f"Examples: {len(results)} run, {len(results) - len(failed)} passed, "
        f"{len(failed)} failed"
        + (f", {len(skipped)} marked no-run" if skipped else "")
        + "."
        + (f" ({ran}{' ...' if len(results) > 20 else ''})" if results else "")
    ]
    budget = max_chars - len(parts[0])
    for i, r in enumerate(failed):
        block = f"FAILED {r.example.where} ({r.example.kind} example):\n{_indent(r.output())}"
        rest = len(failed) - i - 1
        reserve = len(_more(rest)) + 2 if rest else 0
        if len(block) + 2 + reserve > budget:
            parts.append(_more(rest + 1))
            break
        parts.append(block)
        budget -= len(block) + 2
    return "\n\n".join(parts)[:max_chars]


def check_docs(sandbox: Sandbox, workspace: Path, timeout: float | None = None) -> DocsCheck:
    """Build the site strictly and run every example of ``workspace``'s docs."""
    build = build_site(sandbox, timeout)
    found = find_examples(workspace)
    results = [run_example(sandbox, example, timeout) for example in found.examples]
    return DocsCheck(build, results, found.skipped)


def _more(n: int) -> str:
    return f"[... {n} more failing examples not shown]"


def _indent(text: str) -> str:
    return "\n".join("    " + ln if ln else ln for ln in text.splitlines())


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head - 40
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[-tail:]}"


class SandboxDocsChecker:
    """The real ``ports.DocsChecker``: ``check_docs`` in the run's sandbox, traced."""

    def __init__(
        self,
        *,
        sandbox: Sandbox,
        workspace: Path,
        trace: Trace,
        progress: Callable[[str], None] = lambda msg: None,
    ) -> None:
        self.sandbox = sandbox
        self.workspace = workspace
        self.trace = trace
        self.progress = progress

    def check(self, round_no: int) -> DocsCheck:
        check = check_docs(self.sandbox, self.workspace)
        build = check.build
        self.trace.write(
            "sandbox_exec",
            argv=["mkdocs", "build", "--strict"],
            exit_code=build.exec.exit_code,
            duration_s=round(build.exec.duration_s, 3),
            killed=build.exec.killed,
        )
        for r in check.examples:
            self.trace.write(
                "doc_example",
                file=r.example.file,
                line=r.example.line,
                type=r.example.kind,
                outcome=r.outcome,
                duration_s=round(r.exec.duration_s, 3),
            )
        self.trace.write(
            "docs_check",
            round=round_no,
            passed=check.passed,
            built=build.built,
            pages=len(build.pages),
            warnings=len(build.warnings),
            errors=len(build.errors),
            examples_run=len(check.examples),
            examples_passed=check.examples_passed,
            problems=check.problems(),
        )
        self.progress(
            f"docs check round {round_no}: "
            + (f"built {len(build.pages)} pages" if build.built else "build FAILED")
            + f", examples {check.examples_passed}/{len(check.examples)}"
        )
        return check
