"""``search_code``: the lines of the workspace's text files that match a regular expression."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.tools._source import Source, count, read_source
from darkfactory.workspace.paths import PathRefused, quote, split_lines

MAX_PATTERN = 300
MAX_CONTEXT = 5
#: Most matching lines shown, characters of output, and characters of one shown line.
MAX_MATCHES = 100
MAX_OUTPUT_CHARS = 8000
MAX_LINE_CHARS = 200
#: Seconds the matching may take before its process is killed (a backtracking pattern).
TIMEOUT_S = 3.0

WORKER = Path(__file__).with_name("_regex_worker.py")


class SearchCodeArgs(ToolArgs):
    pattern: str = Field(
        min_length=1,
        max_length=MAX_PATTERN,
        description=r"Python regular expression matched against each line, e.g. 'def load_\w+'.",
    )
    path: str = Field(default=".", description="Directory or file to search. Default: all.")
    glob: str | None = Field(
        default=None,
        max_length=200,
        description="Only files whose name matches, e.g. '*.py'; with a '/', their path.",
    )
    ignore_case: bool = Field(default=False, description="Match case-insensitively.")
    context: int = Field(
        default=0, ge=0, le=MAX_CONTEXT, description="Lines to show before and after each match."
    )


class SearchCodeTool(WorkspaceTool):
    name: str = "search_code"
    description: str = (
        "Search the workspace's text files for lines matching a Python regular expression. "
        "Answers 'path:line: text' (context 'path-line- text'), at most "
        f"{MAX_MATCHES} matches or {MAX_OUTPUT_CHARS} characters, then the count of the rest. "
        "Skips binary files, .git, caches, virtualenvs, symlinks (not followed) and files "
        "over 1 MiB; refuses paths outside the workspace; stops a pattern still running "
        f"after {TIMEOUT_S:g} s."
    )
    args_schema: type[BaseModel] = SearchCodeArgs

    def _run(
        self,
        pattern: str,
        path: str = ".",
        glob: str | None = None,
        ignore_case: bool = False,
        context: int = 0,
    ) -> str:
        ctx = self.run_context
        context = max(0, min(context, MAX_CONTEXT))
        try:
            flags = _check(pattern, ignore_case)
            src = read_source(ctx, path, _glob_filter(glob))
            texts = [data.decode("utf-8", errors="replace") for _, data in src.files]
            hits, total, files = _match(pattern, flags, texts)
        except PathRefused as refused:
            ctx.emit("file_op", tool=self.name, path=path[:300], ok=False, bytes=0)
            return f"ERROR: {refused.message}"
        ctx.emit("file_op", tool=self.name, path=path[:300], ok=True, bytes=0)
        return _render(src, texts, hits, total, files, pattern, glob, context)


def _check(pattern: str, ignore_case: bool) -> int:
    """The flags to match ``pattern`` with, or ``PathRefused`` saying what is wrong with it."""
    if not pattern:
        raise PathRefused("the pattern is empty; give a regular expression, e.g. 'def load_'.")
    if len(pattern) > MAX_PATTERN:
        raise PathRefused(f"the pattern is {len(pattern)} characters, over {MAX_PATTERN}.")
    flags = re.IGNORECASE if ignore_case else 0
    try:
        re.compile(pattern, flags)
    except re.error as exc:
        raise PathRefused(
            f"{quote(pattern)} is not a valid Python regular expression: {exc}. Escape "
            r"characters meant literally with a backslash, e.g. 'print\(' or 'a\.b'."
        ) from None
    except (OverflowError, RecursionError):
        raise PathRefused(f"{quote(pattern)} is too large or nested; simplify it.") from None
    return flags


def _glob_filter(glob: str | None) -> Callable[[str], bool]:
    """Whether a workspace-relative path is searched: its name, or with a '/' its path,
    matches ``glob``."""
    glob = (glob or "").strip().removeprefix("./")
    if not glob:
        return lambda rel: True
    if len(glob) > 200:
        raise PathRefused("the glob is over 200 characters; give a short one, e.g. '*.py'.")
    if "/" in glob:
        return lambda rel: fnmatch.fnmatchcase(rel, glob)
    return lambda rel: fnmatch.fnmatchcase(rel.rpartition("/")[2], glob)


def _match(pattern: str, flags: int, texts: list[str]) -> tuple[list[list[int]], int, int]:
    """The first hits ``[text index, line]``, the matching lines and files, from the worker."""
    if not texts:
        return [], 0, 0
    request = json.dumps(
        {"pattern": pattern, "flags": flags, "max_hits": MAX_MATCHES, "texts": texts}
    )
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(WORKER)],
            input=request,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PathRefused(
            f"{quote(pattern)} was still matching after {TIMEOUT_S:g} s and was stopped: "
            "probably catastrophic backtracking. Avoid nested or overlapping repeats such as "
            "'(a+)+' or '(\\w+\\s?)*', or narrow path or glob."
        ) from None
    if done.returncode != 0:
        raise RuntimeError(f"the regex worker failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    return result["hits"], result["total"], result["files"]


def _render(
    src: Source,
    texts: list[str],
    hits: list[list[int]],
    total: int,
    files: int,
    pattern: str,
    glob: str | None,
    context: int,
) -> str:
    searched = f"{count(len(texts), 'file')} searched"
    if glob:
        searched += f" (glob {quote(glob)})"
    note = src.skipped_note()
    if total == 0:
        none = f"No line under {quote(src.base or '.')} matches {quote(pattern)}; {searched}."
        return f"{none}\n{note}" if note else none
    matched = {(i, n) for i, n in hits}
    split: dict[int, list[str]] = {}
    out: list[str] = []
    used = shown = 0
    last = (-1, 0)  # (text, line) printed last
    for i, n in hits:
        lines = split.get(i)
        if lines is None:
            lines = split[i] = split_lines(texts[i])
        first, end = max(1, n - context), min(len(lines), n + context)
        block = []
        if last[0] == i and first <= last[1] + 1:
            first = last[1] + 1  # joins the block before
        elif context and out:
            block.append("--")
        path = src.files[i][0]
        for k in range(first, end + 1):
            text = lines[k - 1].removesuffix("\r")
            if len(text) > MAX_LINE_CHARS:
                text = f"{text[:MAX_LINE_CHARS]}... [{len(text)} characters]"
            sep = ":" if (i, k) in matched else "-"
            block.append(f"{path}{sep}{k}{sep} {text}")
        cost = sum(len(line) + 1 for line in block)
        if out and used + cost > MAX_OUTPUT_CHARS:
            break
        out.extend(block)
        used += cost
        shown += 1
        last = (i, max(end, last[1]) if last[0] == i else end)
    if shown < total:
        out.append(
            f"[{shown} of {count(total, 'matching line')} shown, in {count(files, 'file')} "
            f"({searched}); narrow pattern, path or glob to see the rest]"
        )
    else:
        out.append(f"[{count(total, 'matching line')} in {count(files, 'file')}; {searched}]")
    if note:
        out.append(note)
    return "\n".join(out)
