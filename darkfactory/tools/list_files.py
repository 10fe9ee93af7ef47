"""``list_files``: what is in the workspace, recursively, with sizes."""

from __future__ import annotations

from itertools import islice

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.workspace.paths import PathRefused, iter_files, quote

MAX_ENTRIES = 500


class ListFilesArgs(ToolArgs):
    path: str = Field(
        default=".",
        description="Directory to list, e.g. 'src'; '.' is the whole workspace.",
    )


class ListFilesTool(WorkspaceTool):
    name: str = "list_files"
    description: str = (
        "List the files under a directory, recursively, with their sizes in bytes (at most "
        f"{MAX_ENTRIES}: list a subdirectory for more); skips .git and caches, marks symlinks "
        "without following them. Refuses paths outside the workspace."
    )
    args_schema: type[BaseModel] = ListFilesArgs

    def _run(self, path: str = ".") -> str:
        ctx = self.run_context
        path = path.strip() or "."
        try:
            entries = list(islice(iter_files(ctx, path), MAX_ENTRIES + 1))
        except PathRefused as refused:
            ctx.emit("file_op", tool=self.name, path=path[:300], ok=False, bytes=0)
            return f"ERROR: {refused.message}"
        ctx.emit("file_op", tool=self.name, path=path[:300], ok=True, bytes=0)
        where = "the workspace" if path in (".", "./", "") else quote(path)
        if not entries:
            return f"No files under {where} (.git and cache directories are not listed)."
        cut = len(entries) > MAX_ENTRIES
        entries = entries[:MAX_ENTRIES]
        lines = [f"Files under {where} (path, size in bytes):"]
        for e in entries:
            lines.append(f"{e.path}  (symlink)" if e.is_symlink else f"{e.path}  {e.size}")
        if cut:
            lines.append(
                f"[cut after {MAX_ENTRIES} entries: list a subdirectory, e.g. "
                "path='src', to see the rest]"
            )
        return "\n".join(lines)
