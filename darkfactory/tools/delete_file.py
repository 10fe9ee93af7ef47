"""``delete_file``: remove a file, symlink or empty directory of the workspace."""

from __future__ import annotations

import stat
from pathlib import Path

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.workspace.paths import PathRefused, quote, relative, resolve


class DeleteFileArgs(ToolArgs):
    path: str = Field(description="File or empty directory to delete, e.g. 'src/old.py'.")


class DeleteFileTool(WorkspaceTool):
    name: str = "delete_file"
    description: str = (
        "Delete a file, a symlink (not its target) or an empty directory. Refuses paths "
        "outside the workspace, its root, directories with files in them, acceptance/ and "
        ".git/."
    )
    args_schema: type[BaseModel] = DeleteFileArgs

    def _run(self, path: str) -> str:
        ctx = self.run_context
        shown = quote(path)
        try:
            target = resolve(ctx, path, write=True, follow_symlinks=False)
            message, size = _delete(target, shown)
        except PathRefused as refused:
            ctx.emit("file_op", tool=self.name, path=path[:300], ok=False, bytes=0)
            return f"ERROR: {refused.message}"
        ctx.emit("file_op", tool=self.name, path=relative(ctx, target), ok=True, bytes=size)
        return message


def _delete(target: Path, shown: str) -> tuple[str, int]:
    """Remove ``target``; the message for the model and the bytes freed."""
    try:
        st = target.lstat()
    except (FileNotFoundError, NotADirectoryError):
        raise PathRefused(f"{shown} does not exist; nothing was deleted.") from None
    if stat.S_ISDIR(st.st_mode):
        entries = sum(1 for _ in target.iterdir())
        if entries:
            raise PathRefused(
                f"{shown} is a directory with {entries} entries; delete_file removes only "
                "empty directories. Delete the files inside it first (list_files shows them)."
            )
        target.rmdir()
        return f"Deleted the empty directory {shown}.", 0
    target.unlink()
    if stat.S_ISLNK(st.st_mode):
        return f"Deleted the symlink {shown} (what it pointed to is unchanged).", 0
    return f"Deleted {shown} ({st.st_size} bytes).", st.st_size
