"""``write_file``: create or overwrite a text file of the workspace."""

from __future__ import annotations

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.workspace.paths import (
    PathRefused,
    quote,
    relative,
    resolve,
    split_lines,
    write_text,
)


class WriteFileArgs(ToolArgs):
    path: str = Field(description="File to write, e.g. 'src/app.py'.")
    content: str = Field(description="The file's complete new text, written exactly as given.")


class WriteFileTool(WorkspaceTool):
    name: str = "write_file"
    description: str = (
        "Create a text file or replace its whole content, creating missing parent "
        "directories; returns the bytes and lines written. For a partial change use "
        "edit_file. Paths are relative to the workspace root; refuses paths outside it "
        "(symlinks included), directories, and the read-only acceptance/ and .git/."
    )
    args_schema: type[BaseModel] = WriteFileArgs

    def _run(self, path: str, content: str) -> str:
        ctx = self.run_context
        shown = quote(path)
        try:
            target = resolve(ctx, path, write=True)
            existed = target.exists()
            written = write_text(target, content, shown)
        except PathRefused as refused:
            ctx.emit("file_op", tool=self.name, path=path[:300], ok=False, bytes=0)
            return f"ERROR: {refused.message}"
        rel = relative(ctx, target)
        ctx.emit("file_op", tool=self.name, path=rel, ok=True, bytes=written)
        how = "overwrote" if existed else "created"
        return f"Wrote {quote(rel)} ({how}): {written} bytes, {len(split_lines(content))} lines."
