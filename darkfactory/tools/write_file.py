"""``write_file``: create or overwrite a text file of the workspace."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

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

#: Files where a Markdown fence is content, kept as given.
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdx"})
_OPENING = re.compile(r"(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n")


def unfence(content: str, path: str) -> tuple[str, str | None]:
    """``content`` without the one Markdown code fence around all of it, and the fence's info
    string (``"python"``; ``""`` when it has none); ``(content, None)`` when it is not exactly
    one fence (text around it, two fences, none) or ``path`` is a Markdown file.

    Models often wrap a file in ```` ```python ... ``` ```` as they would in a chat answer.
    """
    if PurePosixPath(path).suffix.lower() in MARKDOWN_SUFFIXES:
        return content, None
    text = content.strip()
    opening = _OPENING.match(text)
    if opening is None:
        return content, None
    fence = opening["fence"]
    inner = text[opening.end() :]
    lines = inner.split("\n")
    if lines[-1].strip() != fence:
        return content, None
    body = lines[:-1]
    # A line that could close the fence before the end: more than one block.
    if any(line.strip().startswith(fence[0] * len(fence)) for line in body):
        return content, None
    return "".join(f"{line}\n" for line in body), opening["info"].strip()


class WriteFileArgs(ToolArgs):
    path: str = Field(description="File to write, e.g. 'src/app.py'.")
    content: str = Field(
        description="The file's complete new text; a Markdown fence around all of it is "
        "removed (not in .md files)."
    )


class WriteFileTool(WorkspaceTool):
    name: str = "write_file"
    description: str = (
        "Create a text file or replace its whole content, creating parent directories; "
        "returns the bytes and lines written. For a partial change use edit_file. Refuses "
        "paths outside the workspace (symlinks too), directories, acceptance/ and .git/."
    )
    args_schema: type[BaseModel] = WriteFileArgs

    def _run(self, path: str, content: str) -> str:
        ctx = self.run_context
        shown = quote(path)
        content, fenced = unfence(content, path)
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
        out = f"Wrote {quote(rel)} ({how}): {written} bytes, {len(split_lines(content))} lines."
        if fenced is not None:
            ctx.emit("fence_unwrapped", tool=self.name, path=rel, info=fenced)
            out += (
                f" The Markdown fence around the content (```{fenced}) was removed: "
                "give a file's text alone."
            )
        return out
