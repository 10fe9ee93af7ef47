"""``run_doc_examples``: run the code examples of README.md and docs/ in the sandbox."""

from __future__ import annotations

from pydantic import BaseModel, Field

from darkfactory.engine.docs_check import NO_RUN, examples_summary, find_examples, run_example
from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.workspace.paths import PathRefused, resolve

MAX_SUMMARY_CHARS = 6000


class RunDocExamplesArgs(ToolArgs):
    files: list[str] = Field(
        default_factory=list,
        description="Only these Markdown files, e.g. ['README.md']. Default: all of them.",
    )


class RunDocExamplesTool(WorkspaceTool):
    name: str = "run_doc_examples"
    description: str = (
        "Run the code examples of README.md and docs/**/*.md in the sandbox, each alone in "
        "a scratch copy of the workspace (the working directory, its modules importable): "
        "```python blocks as scripts, blocks starting with `>>>` as doctests (ELLIPSIS on); "
        f"not blocks after a line `{NO_RUN}` or in other languages. Returns the counts and "
        "each failure as FILE:LINE with its traceback or expected and actual output. The "
        "pipeline runs the same check."
    )
    args_schema: type[BaseModel] = RunDocExamplesArgs

    def _run(self, files: list[str] | None = None) -> str:
        ctx = self.run_context
        sandbox = ctx.sandbox
        if sandbox is None:
            raise RuntimeError("run_doc_examples needs a RunContext with a sandbox")
        found = find_examples(ctx.workspace)
        examples, skipped = found.examples, found.skipped
        if files:
            wanted = set()
            for raw in files:
                try:
                    path = resolve(ctx, raw, write=False)
                except PathRefused as refused:
                    return f"ERROR: {refused.message}"
                wanted.add(path.relative_to(ctx.workspace).as_posix())
            examples = [e for e in examples if e.file in wanted]
            skipped = [s for s in skipped if s.rsplit(":", 1)[0] in wanted]
        if not examples:
            return (
                "No runnable examples found"
                + (f" in {', '.join(files)}" if files else " in README.md or docs/")
                + ": a ```python block or a block of `>>>` lines is an example."
            )
        results = []
        for example in examples:
            result = run_example(sandbox, example)
            ctx.emit(
                "sandbox_exec",
                tool=self.name,
                argv=["python" if example.kind == "python" else "doctest", example.where],
                exit_code=result.exec.exit_code,
                duration_s=round(result.exec.duration_s, 3),
                killed=result.exec.killed,
            )
            results.append(result)
        return examples_summary(results, skipped, MAX_SUMMARY_CHARS)
