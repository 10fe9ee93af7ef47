"""``word_frequency``: the most frequent words of a text file in the workspace.

An example of a project's own tool (docs/extending.md): a module in the project's ``tools/``
that a role gets when ``config/agents.yaml`` names ``word_frequency`` under its ``tools:``.
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.workspace.paths import PathRefused, quote, read_text, relative, resolve

#: A word: letters (any script), optionally joined by apostrophes ("don't"). No digits.
WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
MAX_TOP = 100


class WordFrequencyArgs(ToolArgs):
    # The Field descriptions are what the model reads to fill in the arguments.
    path: str = Field(
        description="Text file to analyse, relative to the workspace root, e.g. 'docs/index.md'."
    )
    top: int = Field(
        default=10,
        ge=1,
        le=MAX_TOP,
        description=f"How many of the most frequent words to report (1 to {MAX_TOP}). Default 10.",
    )


class WordFrequencyTool(WorkspaceTool):
    name: str = "word_frequency"
    description: str = (
        "Count the words of a UTF-8 text file of the workspace and return the most frequent "
        "ones, one per line as 'count word', most frequent first (ties in alphabetical "
        "order), after a line with the total and distinct word counts. Words are runs of "
        "letters, compared case-insensitively; digits and punctuation are not words. Paths "
        "are relative to the workspace root. Refuses absolute paths, paths that lead outside "
        "the workspace (also through symlinks), directories and binary files. Reads only; "
        "changes nothing."
    )
    args_schema: type[BaseModel] = WordFrequencyArgs

    def _run(self, path: str, top: int = 10) -> str:
        ctx = self.run_context
        shown = quote(path)
        try:
            target = resolve(ctx, path, write=False)  # confined to the workspace
            text = read_text(target, shown)  # refuses directories, binary and huge files
        except PathRefused as refused:
            # A mistake the model can fix: tell it what is wrong, as text.
            ctx.emit("file_op", tool=self.name, path=path[:300], ok=False, bytes=0)
            return f"ERROR: {refused.message}"
        rel = relative(ctx, target)
        ctx.emit("file_op", tool=self.name, path=rel, ok=True, bytes=len(text.encode("utf-8")))

        counts = Counter(word.casefold() for word in WORD.findall(text))
        if not counts:
            return f"{quote(rel)} has no words."
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
        lines = [
            f"{quote(rel)}: {counts.total()} words, {len(counts)} distinct; "
            f"the {len(ranked)} most frequent:"
        ]
        lines += [f"{count} {word}" for word, count in ranked]
        return "\n".join(lines)
