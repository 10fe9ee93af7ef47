"""Requirements from a plain-text or Markdown spec.

The rules, applied in file order (a ``text`` spec follows the same rules as Markdown):

1. Fenced code blocks (```` ``` ```` or ``~~~``), HTML comments, tables and horizontal
   rules are skipped; a leading ``>`` (block quote) is dropped.
2. **Title**: the first level-1 heading (``# Title``, or a line underlined with ``===``).
   Without one, the file name: ``word_count.md`` becomes "Word count".
3. **Summary**: the first paragraph of prose (not a heading, not a list item, not a lone
   lead-in line such as "Requirements:" before a list), its lines joined with spaces.
4. **Requirements** R1..Rn, each with the line it starts on:

   - Every list item (``-``, ``*``, ``+``, ``1.``, ``1)``; a checkbox ``[ ]``/``[x]`` is
     dropped), with its continuation lines joined.
   - Every sentence of prose containing *must*, *shall* or *should*, as written.
   - A list item that ends with ``:`` and has nested items is a lead-in, not a
     requirement: each nested item is prefixed with it ("Options: ``-l`` counts lines").
     Likewise a prose sentence ending with ``:`` right before a list is skipped; the list
     items carry the requirements.
   - A list item under a section heading (any heading but the title) is prefixed with the
     heading, "Output: one line per file", so a terse bullet keeps its context. Not when
     the heading is generic (Requirements, Acceptance criteria, Features, Specification,
     ...) or the item already contains the heading's words ("Output lines are tab
     separated" under "Output"). Sentences are never prefixed: they read on their own.
   - Sections headed Out of scope, Non-goals, Not in scope, References or See also, and
     their sub-sections, give no requirements and no summary.
   - The same text twice (ignoring case, spacing, a final period and the section prefix)
     is one requirement.

5. A spec from which no requirement can be derived is a ``SpecError`` that says how to
   write one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from darkfactory.errors import SpecError
from darkfactory.spec.model import Requirement, SourceRef, Spec, SpecFormat

#: Headings that say nothing a requirement needs repeated (compared after ``_norm``).
GENERIC_HEADINGS = frozenset(
    {
        "requirements",
        "requirement",
        "functional requirements",
        "acceptance criteria",
        "criteria",
        "features",
        "feature",
        "specification",
        "spec",
        "details",
        "behaviour",
        "behavior",
        "rules",
        "must",
        "must have",
        "must haves",
        "overview",
        "description",
        "summary",
        "goals",
        "scope",
        "in scope",
        "user stories",
    }
)
#: Sections whose list items and sentences are not requirements.
SKIPPED_HEADINGS = frozenset(
    {"out of scope", "non goals", "not in scope", "references", "see also"}
)

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_ATX = re.compile(r"^\s{0,3}(#{1,6})(?:\s+(.*))?$")
_ATX_CLOSE = re.compile(r"(?:^|\s+)#+\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-{2,})\s*$")
_HR = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d{1,9}[.)])\s+(\S.*)$")
_CHECKBOX = re.compile(r"^\[[ xX]\]\s+")
_TABLE = re.compile(r"^\s*\|")
_QUOTE = re.compile(r"^\s{0,3}>\s?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'`(\[*_])")
_MODAL = re.compile(r"\b(?:must|shall|should)\b", re.IGNORECASE)


@dataclass
class _Block:
    kind: str  # "heading" | "item" | "para"
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)
    level: int = 0  # heading level
    indent: int = 0  # list item indent

    @property
    def line(self) -> int:
        return self.lines[0][0]

    @property
    def text(self) -> str:
        return " ".join(t for _, t in self.lines).strip()


def parse_prose(text: str, *, file: Path, format: SpecFormat) -> Spec:
    """A ``Spec`` from a text or Markdown spec, by the rules in this module's docstring."""
    blocks = _blocks(text)
    title: str | None = None
    summary: str | None = None
    found: list[tuple[int, str]] = []
    seen: set[str] = set()

    def add(line: int, requirement: str, section: str | None = None) -> None:
        key = _norm_text(requirement)
        if key and key not in seen:
            seen.add(key)
            if section and not _mentions(requirement, section):
                requirement = f"{section}: {requirement}"
            found.append((line, requirement))

    section: str | None = None
    skip_level: int | None = None
    leadins: list[tuple[int, str]] = []  # (indent, text) of enclosing lead-in items
    for i, block in enumerate(blocks):
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if block.kind == "heading":
            heading = block.text
            if block.level == 1 and title is None:
                title, section, skip_level = heading, None, None
                continue
            if skip_level is not None and block.level > skip_level:
                continue
            norm = _norm_heading(heading)
            skip_level = block.level if norm in SKIPPED_HEADINGS else None
            section = None if norm in GENERIC_HEADINGS else heading.rstrip(":").strip()
            leadins = []
            continue
        if skip_level is not None:
            continue
        if block.kind == "item":
            while leadins and leadins[-1][0] >= block.indent:
                leadins.pop()
            item = block.text
            if item.endswith(":") and nxt and nxt.kind == "item" and nxt.indent > block.indent:
                leadins.append((block.indent, item))
                continue
            add(block.line, " ".join([t for _, t in leadins] + [item]), section)
            continue
        leadins = []
        introduces_list = block.text.endswith(":") and nxt is not None and nxt.kind == "item"
        sentences = _sentences(block)
        if summary is None and not (introduces_list and len(sentences) == 1):
            summary = block.text
        for k, (line, sentence) in enumerate(sentences):
            if introduces_list and k == len(sentences) - 1:
                continue
            if _MODAL.search(sentence):
                add(line, sentence)

    if not found:
        raise SpecError(
            "no requirement found in the spec",
            file=file,
            hint=(
                "write each requirement as a list item ('- Counts the words of each file') or "
                "as a sentence with must, shall or should ('The tool must count words.')"
            ),
        )
    return Spec(
        format=format,
        title=title or _title_from_name(file),
        summary=summary or "",
        requirements=[
            Requirement(id=f"R{n}", text=req, source=SourceRef(file=str(file), line=line))
            for n, (line, req) in enumerate(found, 1)
        ],
        source=str(file),
    )


def _blocks(text: str) -> list[_Block]:
    """Split the text into headings, list items and paragraphs (see the module docstring)."""
    blocks: list[_Block] = []
    cur: _Block | None = None  # the open paragraph or list item
    after_blank = False
    fence: str | None = None
    in_comment = False
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.expandtabs(4).rstrip()
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        if in_comment:
            in_comment = "-->" not in line
            continue
        if m := _FENCE.match(line):
            fence, cur = m.group(1)[0] * 3, None
            continue
        if line.strip().startswith("<!--"):
            in_comment, cur = "-->" not in line, None
            continue
        while _QUOTE.match(line):
            line = _QUOTE.sub("", line, count=1)
        stripped = line.strip()
        if not stripped:
            if cur is not None and cur.kind == "para":
                cur = None
            after_blank = True
            continue
        was_blank, after_blank = after_blank, False
        if cur is not None and cur.kind == "para" and not was_blank and (m := _SETEXT.match(line)):
            cur.kind, cur.level, cur = "heading", 1 if m.group(1)[0] == "=" else 2, None
            continue
        if _HR.match(line) or _TABLE.match(line):
            cur = None
            continue
        if m := _ATX.match(line):
            heading = _ATX_CLOSE.sub("", m.group(2) or "").strip()
            if heading:
                blocks.append(_Block("heading", [(n, heading)], level=len(m.group(1))))
            cur = None
            continue
        if m := _ITEM.match(line):
            cur = _Block("item", [(n, _CHECKBOX.sub("", m.group(2)))], indent=len(m.group(1)))
            blocks.append(cur)
            continue
        indent = len(line) - len(line.lstrip())
        if cur is not None and (
            (cur.kind == "item" and (not was_blank or indent > cur.indent)) or cur.kind == "para"
        ):
            cur.lines.append((n, stripped))
            continue
        cur = _Block("para", [(n, stripped)])
        blocks.append(cur)
    return blocks


def _sentences(block: _Block) -> list[tuple[int, str]]:
    """The sentences of a paragraph, each with the line it starts on."""
    joined = ""
    starts: list[tuple[int, int]] = []  # (offset in joined, line number)
    for n, part in block.lines:
        if joined:
            joined += " "
        starts.append((len(joined), n))
        joined += part
    bounds = [0, *(m.end() for m in _SENTENCE_END.finditer(joined))]
    out = []
    for k, start in enumerate(bounds):
        end = bounds[k + 1] if k + 1 < len(bounds) else len(joined)
        sentence = joined[start:end].strip()
        if sentence:
            line = max(n for offset, n in starts if offset <= start)
            out.append((line, sentence))
    return out


def _norm_heading(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.casefold()).split())


def _norm_text(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(" .")


def _mentions(text: str, words: str) -> bool:
    """Whether ``text`` contains ``words`` as whole words (ignoring case)."""
    pattern = r"\b" + r"\W+".join(map(re.escape, _norm_heading(words).split())) + r"\b"
    return re.search(pattern, text.casefold()) is not None


def _title_from_name(file: Path) -> str:
    words = " ".join(re.split(r"[\s_.\-]+", file.stem)).strip()
    return words[:1].upper() + words[1:] if words else "Untitled"
