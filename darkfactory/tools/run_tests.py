"""``run_tests``: run pytest in the sandbox and report every test's outcome.

Outcomes come from ``testrun.run_pytest``'s isolated runner; nothing is written into the
workspace. ``acceptance`` names the read-only acceptance suite mounted at ``/acceptance``
when the sandbox has that mount; otherwise it is an ordinary workspace path.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from darkfactory.sandbox import ACCEPTANCE_TARGET, Sandbox
from darkfactory.sandbox.testrun import run_pytest
from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.workspace.paths import PathRefused, quote, resolve

MAX_SUMMARY_CHARS = 6000


class RunTestsArgs(ToolArgs):
    paths: list[str] = Field(
        default_factory=lambda: ["tests"],
        description=(
            "Test directories, files or ids, e.g. ['tests/test_app.py::test_empty']; "
            "'acceptance' is the spec's acceptance tests. Default: ['tests']."
        ),
    )


class RunTestsTool(WorkspaceTool):
    name: str = "run_tests"
    description: str = (
        "Run pytest in the sandbox; returns the passed, failed, error and skipped counts and "
        "each failure with its assertion message, or why collection failed, or that the "
        "time limit killed the tests. Refuses paths outside the workspace and paths that do "
        "not exist."
    )
    args_schema: type[BaseModel] = RunTestsArgs

    def _run(self, paths: list[str] | None = None) -> str:
        ctx = self.run_context
        sandbox = ctx.sandbox
        if sandbox is None:
            raise RuntimeError("run_tests needs a RunContext with a sandbox")
        paths = list(paths or ["tests"])
        targets: list[str] = []
        for raw in paths:
            target = self._target(raw, sandbox)
            if target.startswith("ERROR:"):
                return target
            targets.append(target)
        suite = _mounted_suite(sandbox, targets)
        run = run_pytest(sandbox, targets, timeout=ctx.test_timeout_s, rootdir=suite)
        ctx.emit(
            "sandbox_exec",
            tool=self.name,
            argv=["pytest", *paths],
            exit_code=run.exec.exit_code,
            duration_s=round(run.exec.duration_s, 3),
            killed=run.exec.killed,
        )
        ctx.emit(
            "test_run",
            tool=self.name,
            paths=paths,
            total=run.total,
            passed=run.passed,
            failed=run.failed,
            errors=run.errors,
            skipped=run.skipped,
            collection_error=run.collection_error is not None,
            killed=run.killed,
        )
        return f"pytest {' '.join(paths)}: " + run.summary(MAX_SUMMARY_CHARS)

    def _target(self, raw: str, sandbox: Sandbox) -> str:
        """The path pytest gets inside the sandbox, or an ``ERROR:`` text for the model."""
        path, sep, selector = raw.strip().partition("::")
        path = path.strip().rstrip("/") or "."
        first = path.split("/", 1)[0]
        if first == "acceptance":
            try:
                mounted = sandbox.path_of(ACCEPTANCE_TARGET)
            except KeyError:
                mounted = None
            if mounted is not None:
                if ".." in path.split("/"):
                    return f"ERROR: {quote(raw)} may not contain '..'."
                return mounted + path[len("acceptance") :] + sep + selector
        try:
            real = resolve(self.run_context, path, write=False)
        except PathRefused as refused:
            return f"ERROR: {refused.message}"
        if not real.exists():
            return (
                f"ERROR: {quote(path)} does not exist in the workspace; give a test file or "
                "directory that exists (e.g. 'tests'), or write the tests first."
            )
        rel = real.relative_to(self.run_context.workspace).as_posix()
        return (rel or ".") + sep + selector


def _mounted_suite(sandbox: Sandbox, targets: list[str]) -> str | None:
    """The acceptance mount, when every target is in it (pytest's rootdir then); else None."""
    try:
        mounted = sandbox.path_of(ACCEPTANCE_TARGET)
    except KeyError:
        return None
    inside = all(t == mounted or t.startswith(mounted + "/") for t in targets)
    return mounted if inside else None
