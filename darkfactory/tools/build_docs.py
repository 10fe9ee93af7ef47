"""``build_docs``: build the docs site strictly in the sandbox and report what failed."""

from __future__ import annotations

from pydantic import BaseModel

from darkfactory.engine.docs_check import DocsToolingMissing, build_site
from darkfactory.tools._base import ToolArgs, WorkspaceTool

MAX_SUMMARY_CHARS = 6000


class BuildDocsArgs(ToolArgs):
    """No arguments: the build always uses ``mkdocs.yml`` in the workspace root."""


class BuildDocsTool(WorkspaceTool):
    name: str = "build_docs"
    description: str = (
        "Run `mkdocs build --strict` in the sandbox on the workspace's mkdocs.yml; returns "
        "OK with the pages built, or FAILED with every warning and error (any warning fails: "
        "a broken link, a nav entry without its page, a `::: module` that does not import). "
        "Writes nothing to the workspace. The pipeline runs the same check."
    )
    args_schema: type[BaseModel] = BuildDocsArgs

    def _run(self) -> str:
        ctx = self.run_context
        if ctx.sandbox is None:
            raise RuntimeError("build_docs needs a RunContext with a sandbox")
        try:
            result = build_site(ctx.sandbox)
        except DocsToolingMissing as exc:
            return f"ERROR: {exc} (not a problem of the docs: report it in your answer)"
        ctx.emit(
            "sandbox_exec",
            tool=self.name,
            argv=["mkdocs", "build", "--strict"],
            exit_code=result.exec.exit_code,
            duration_s=round(result.exec.duration_s, 3),
            killed=result.exec.killed,
        )
        return result.summary(MAX_SUMMARY_CHARS)
