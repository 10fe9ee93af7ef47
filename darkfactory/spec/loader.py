"""Read a spec file and turn it into a ``Spec``, whatever its format.

Formats, as ``detect_format`` chooses them from the file (``format=`` overrides):

- ``ticket``: a ``.yaml``/``.yml`` file, or a ``.md``/``.markdown`` file whose YAML front
  matter (between ``---`` lines at the very top) has a ``title`` or ``acceptance_criteria``
  key; the Markdown body is then the description. Keys and rules: ``darkfactory.spec._ticket``.
- ``markdown``: any other ``.md``/``.markdown`` file (front matter without those keys is
  ignored). How requirements are found: ``darkfactory.spec._prose``.
- ``text``: any other file, read with the same rules as Markdown.

Every problem is a ``SpecError`` naming the file, the line or key, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast, get_args

from darkfactory.errors import SpecError
from darkfactory.spec._prose import parse_prose
from darkfactory.spec._ticket import parse_ticket
from darkfactory.spec.model import Spec, SpecFormat
from darkfactory.yamlio import parse_yaml

SPEC_FORMATS: tuple[str, ...] = get_args(SpecFormat)
YAML_SUFFIXES = (".yaml", ".yml")
MARKDOWN_SUFFIXES = (".md", ".markdown")
#: Front-matter keys that make a Markdown file a ticket.
TICKET_MARKERS = ("title", "acceptance_criteria")


def load_spec(path: str | Path, *, format: str | None = None) -> Spec:
    """Read the spec at ``path`` into a ``Spec``; ``format`` overrides the detected format."""
    p = Path(path)
    text = read_spec_text(p)
    fmt = _check_format(format, p) if format is not None else detect_format(p, text)
    front = None if p.suffix.lower() in YAML_SUFFIXES else split_front_matter(text)
    if fmt == "ticket":
        if front is None:  # a whole-file YAML ticket
            return parse_ticket(text, file=p)
        return parse_ticket(front.yaml_text, file=p, body=front.body)
    if front is not None:
        text = front.blanked_body()  # ignore non-ticket front matter, keep line numbers
    return parse_prose(text, file=p, format=fmt)


def detect_format(path: str | Path, text: str | None = None) -> SpecFormat:
    """The format of the spec at ``path`` (its ``text`` is read from the file if not given)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in YAML_SUFFIXES:
        return "ticket"
    if suffix in MARKDOWN_SUFFIXES:
        front = split_front_matter(read_spec_text(p) if text is None else text)
        if front is not None:
            data, _ = parse_yaml(front.yaml_text, file=p, error=SpecError)
            if isinstance(data, dict) and any(k in data for k in TICKET_MARKERS):
                return "ticket"
        return "markdown"
    return "text"


def read_spec_text(path: Path) -> str:
    """The spec file's text with ``\\n`` line ends; missing, unreadable or empty is a SpecError."""
    if path.is_dir():
        raise SpecError(
            "is a directory, not a spec file",
            file=path,
            hint="name the spec file itself, e.g. specs/ticket.yaml",
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(
            "spec file not found",
            file=path,
            hint="check the path (a relative path is taken from the current directory)",
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot read the spec file: {exc.strerror}", file=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"not UTF-8 text (byte {exc.start}: {exc.reason})",
            file=path,
            line=line,
            hint="save the spec as UTF-8 text",
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SpecError(
            "the spec is empty",
            file=path,
            line=1,
            hint="write what the software must do: a title and a list of requirements",
        )
    return text


@dataclass(frozen=True)
class FrontMatter:
    """A Markdown file split at its YAML front matter.

    ``yaml_text`` and ``body`` keep the file's line numbers: the lines that are not theirs
    are blank, so a YAML error or a requirement reports the line it has in the file.
    """

    yaml_text: str
    body: str
    body_line: int  # 1-based line of the body's first line

    def blanked_body(self) -> str:
        return "\n" * (self.body_line - 1) + self.body


def split_front_matter(text: str) -> FrontMatter | None:
    """The front matter of ``text`` if its first line is ``---`` and a ``---``/``...`` closes it."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].rstrip() in ("---", "..."):
            yaml_text = "\n" + "\n".join(lines[1:i]) + "\n"
            return FrontMatter(yaml_text=yaml_text, body="\n".join(lines[i + 1 :]), body_line=i + 2)
    return None


def _check_format(fmt: str, path: Path) -> SpecFormat:
    if fmt not in SPEC_FORMATS:
        raise SpecError(
            f"unknown spec format {fmt!r}",
            file=path,
            hint=f"use one of: {', '.join(SPEC_FORMATS)} (or leave it out to detect it from the file)",
        )
    return cast(SpecFormat, fmt)
