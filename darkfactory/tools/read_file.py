"""``read_file``: a text file of the workspace, or a range of its lines, numbered."""

from __future__ import annotations

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.workspace.paths import (
    PathRefused,
    numbered,
    quote,
    read_text,
    relative,
    resolve,
    split_lines,
)

MAX_LINES = 2000
MAX_CHARS = 60_000
#: Without a range only the head of a file is shown, so a large file never fills a prompt.
HEAD_LINES = 500
HEAD_CHARS = 20_000
#: Tokens are estimated at 4 characters each (as the scripted model and CrewAI's fallback do).
CHARS_PER_TOKEN = 4
#: Characters of an answer kept for its header and its notice when it is sized to a context.
FRAME_CHARS = 400
#: What a line's number and tab add (``numbered``), plus its newline.
NUMBER_CHARS = 8


class ReadFileArgs(ToolArgs):
    path: str = Field(description="File to read, e.g. 'src/app.py'.")
    start_line: int | None = Field(
        default=None, ge=1, description="First line to show, 1-based. Default: the first."
    )
    end_line: int | None = Field(
        default=None, ge=1, description="Last line to show (inclusive). Default: the last."
    )


class ReadFileTool(WorkspaceTool):
    name: str = "read_file"
    description: str = (
        "Read a UTF-8 text file: each line as its number, a tab, then the text (leave both "
        "out of edit_file's old_text). Output is cut at "
        f"{HEAD_LINES} lines or {HEAD_CHARS} characters without a range ({MAX_LINES} or "
        f"{MAX_CHARS} with one), with the start_line that reads on. "
        "Refuses paths outside the workspace (symlinks too), directories and binary files."
    )
    args_schema: type[BaseModel] = ReadFileArgs

    def _run(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        ctx = self.run_context
        shown = quote(path)
        try:
            target = resolve(ctx, path, write=False)
            text = read_text(target, shown)
        except PathRefused as refused:
            ctx.emit("file_op", tool=self.name, path=path[:300], ok=False, bytes=0)
            return f"ERROR: {refused.message}"
        rel = relative(ctx, target)
        size = len(text.encode("utf-8"))
        lines = split_lines(text)
        total = len(lines)
        first = 1 if start_line is None else start_line
        last = total if end_line is None else min(end_line, total)
        error = None
        if first < 1 or (end_line is not None and end_line < 1):
            error = "start_line and end_line are 1-based: the first line is 1."
        elif end_line is not None and end_line < first:
            error = f"end_line ({end_line}) is before start_line ({first})."
        elif total == 0:
            ctx.emit("file_op", tool=self.name, path=rel, ok=True, bytes=0)
            return f"{shown} is empty (0 bytes)."
        elif first > total:
            error = f"start_line {first} is past the end of {shown}, which has {total} lines."
        if error is not None:
            ctx.emit("file_op", tool=self.name, path=rel, ok=False, bytes=0)
            return f"ERROR: {error}"

        ranged = start_line is not None or end_line is not None
        max_lines = MAX_LINES if ranged else min(HEAD_LINES, MAX_LINES)
        max_chars = MAX_CHARS if ranged else min(HEAD_CHARS, MAX_CHARS)
        # The role's share of its model's context, in characters of the numbered answer.
        fit = self._context_chars()
        line_chars = 2000 if fit is None else max(1, min(2000, fit // 2))
        shown_lines: list[str] = []
        chars = used = 0
        by_context = False
        for line in lines[first - 1 : last]:
            if len(shown_lines) >= max_lines or (shown_lines and chars + len(line) > max_chars):
                break
            cost = min(len(line), line_chars + 40) + NUMBER_CHARS
            if fit is not None and shown_lines and used + cost > fit:
                by_context = True
                break
            shown_lines.append(line)
            chars += len(line) + 1
            used += cost
        shown_last = first + len(shown_lines) - 1
        crlf = ", CRLF line endings" if "\r\n" in text else ""
        header = f"{shown}: lines {first}-{shown_last} of {total} ({size} bytes{crlf})"
        body = numbered(shown_lines, first, max_line_chars=line_chars)
        out = f"{header}\n{body}"
        if shown_last < last:
            why = (
                "to fit this role's share of its model's context (llm.read_file_share)"
                if by_context
                else "to keep the output small"
            )
            out += (
                f"\n[cut after line {shown_last} {why}: call read_file with "
                f"start_line={shown_last + 1} to read on"
                + ("]" if ranged else ", or with start_line and end_line for the lines you need]")
            )
        ctx.emit("file_op", tool=self.name, path=rel, ok=True, bytes=size, cut=shown_last < last)
        return out

    def _context_chars(self) -> int | None:
        """Characters of numbered lines one answer may hold (``output_tokens``), if sized."""
        if self.output_tokens is None:
            return None
        return max(CHARS_PER_TOKEN * self.output_tokens - FRAME_CHARS, 200)
