"""``edit_file``: replace an exact piece of text in a file of the workspace."""

from __future__ import annotations

import difflib
import re

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
    write_text,
)

#: Above this many lines the "closest region" hint is skipped (it costs lines x window).
MAX_LINES_FOR_HINT = 5000
CONTEXT_LINES = 3
MAX_SNIPPET_LINES = 30
_LINE_NUMBER_PREFIX = re.compile(r"^\s*\d+\t", re.MULTILINE)


class EditFileArgs(ToolArgs):
    path: str = Field(description="File to edit, e.g. 'src/app.py'.")
    old_text: str = Field(
        min_length=1,
        description=(
            "The exact text to replace, whitespace included, without read_file's line "
            "numbers; add surrounding lines to make it unique."
        ),
    )
    new_text: str = Field(description="Its replacement (empty deletes old_text).")
    replace_all: bool = Field(
        default=False, description="Replace every occurrence, not exactly one."
    )


class EditFileTool(WorkspaceTool):
    name: str = "edit_file"
    description: str = (
        "Replace old_text with new_text in a UTF-8 text file. old_text must occur exactly "
        "once (or set replace_all); if not, the error shows the closest region or each "
        "occurrence's line. Refuses paths outside the workspace (symlinks too), binary "
        "files, acceptance/ and .git/."
    )
    args_schema: type[BaseModel] = EditFileArgs

    def _run(self, path: str, old_text: str, new_text: str, replace_all: bool = False) -> str:
        ctx = self.run_context
        shown = quote(path)
        try:
            target = resolve(ctx, path, write=True)
            text = read_text(target, shown)
            new, first_line, count = _replace(text, old_text, new_text, replace_all, shown)
            written = write_text(target, new, shown)
        except PathRefused as refused:
            ctx.emit("file_op", tool=self.name, path=path[:300], ok=False, bytes=0)
            return f"ERROR: {refused.message}"
        rel = relative(ctx, target)
        ctx.emit("file_op", tool=self.name, path=rel, ok=True, bytes=written)
        lines = split_lines(new)
        what = "1 occurrence" if count == 1 else f"{count} occurrences"
        out = (
            f"Edited {quote(rel)}: replaced {what} (first at line {first_line}); the file now "
            f"has {len(lines)} lines, {written} bytes."
        )
        if count == 1:
            start = max(1, first_line - CONTEXT_LINES)
            end = first_line + len(split_lines(new_text) or [""]) - 1 + CONTEXT_LINES
            end = min(end, len(lines), start + MAX_SNIPPET_LINES - 1)
            if end >= start:
                out += f"\nLines {start}-{end} now read:\n{numbered(lines[start - 1 : end], start)}"
        return out


def _replace(text: str, old: str, new: str, replace_all: bool, shown: str) -> tuple[str, int, int]:
    """``text`` with ``old`` replaced, the line of the first match, and the match count."""
    if not old:
        raise PathRefused("old_text is empty; give the exact text to replace.")
    if old == new:
        raise PathRefused("old_text and new_text are the same; there is nothing to change.")
    count = text.count(old)
    if count == 0 and "\r\n" in text and "\r\n" not in old:
        # The file has Windows line endings; read_file does not show the \r.
        crlf_old = old.replace("\n", "\r\n")
        if text.count(crlf_old):
            old, new = crlf_old, new.replace("\r\n", "\n").replace("\n", "\r\n")
            count = text.count(old)
    if count == 0:
        raise PathRefused(_absent_message(text, old, shown))
    starts = _match_lines(text, old)
    if count > 1 and not replace_all:
        where = ", ".join(str(n) for n in starts[:20])
        more = f" and {count - 20} more" if count > 20 else ""
        raise PathRefused(
            f"old_text occurs {count} times in {shown} (starting at lines {where}{more}); "
            "include more surrounding lines in old_text so it matches exactly one place, or "
            "set replace_all to true to replace all of them."
        )
    return text.replace(old, new), starts[0], count


def _match_lines(text: str, old: str) -> list[int]:
    """1-based line numbers where the non-overlapping matches of ``old`` start."""
    lines = []
    pos = text.find(old)
    while pos != -1:
        lines.append(text.count("\n", 0, pos) + 1)
        pos = text.find(old, pos + len(old))
    return lines


def _absent_message(text: str, old: str, shown: str) -> str:
    message = f"old_text was not found in {shown}; nothing was changed."
    if _LINE_NUMBER_PREFIX.search(old) and all(
        _LINE_NUMBER_PREFIX.match(line) for line in old.split("\n") if line.strip()
    ):
        return (
            f"{message} old_text seems to start its lines with read_file's line numbers; "
            "leave them out and copy only the text after the tab."
        )
    if old.strip() and text.count(old.strip()) == 1:
        return (
            f"{message} It does occur without its leading/trailing whitespace or line breaks; "
            "copy old_text exactly, including indentation."
        )
    lines = split_lines(text)
    region = _closest_region(lines, old)
    if region is None:
        return f"{message} Read the file with read_file and copy old_text exactly."
    start, end = region
    return (
        f"{message} The closest region is lines {start}-{end}:\n"
        f"{numbered(lines[start - 1 : end], start)}\n"
        "Copy old_text exactly from the file (indentation, quotes and line breaks included)."
    )


def _closest_region(lines: list[str], old: str) -> tuple[int, int] | None:
    """The 1-based inclusive line range most similar to ``old``, if any is similar enough."""
    if not lines or len(lines) > MAX_LINES_FOR_HINT:
        return None
    width = min(max(1, len(split_lines(old))), len(lines), MAX_SNIPPET_LINES)
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(old)
    best, best_at = 0.0, -1
    for i in range(len(lines) - width + 1):
        matcher.set_seq1("\n".join(lines[i : i + width]))
        if matcher.real_quick_ratio() <= best or matcher.quick_ratio() <= best:
            continue
        ratio = matcher.ratio()
        if ratio > best:
            best, best_at = ratio, i
    if best < 0.5:
        return None
    return best_at + 1, best_at + width
