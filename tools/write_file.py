"""``write_file``: create or overwrite a text file of the workspace."""

from __future__ import annotations

from pydantic import BaseModel, Field

from darkfactory.workspace import PathRefused, quote, relative, resolve, split_lines, write_text
from tools._base import WorkspaceTool


class WriteFileArgs(BaseModel):
    path: str = Field(
        description=(
            "File to write, relative to the workspace root, e.g. 'src/app.py'. Missing parent "
            "directories are created."
        )
    )
    content: str = Field(
        description="The complete new text of the file (UTF-8), written exactly as given."
    )


class WriteFileTool(WorkspaceTool):
    name: str = "write_file"
    description: str = (
        "Create a text file, or overwrite an existing one with new content in full, creating "
        "missing parent directories. To change part of an existing file use edit_file "
        "instead. Paths are relative to the workspace root. Refuses absolute paths, paths "
        "that lead outside the workspace (also through symlinks), directories, and anything "
        "under a read-only path: the acceptance tests (acceptance/) and .git/. Returns the "
        "number of bytes and lines written."
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
