"""Read a spec and turn it into a ``Spec``, whatever its format.

Formats, as ``detect_format`` chooses them (``format=`` overrides; ``--format`` on the CLI):

- ``testsuite``: a directory, or a ``.py`` file: existing pytest/unittest tests are the
  spec. Rules: ``darkfactory.spec._testsuite``.
- ``contract``: a ``.json``/``.yaml``/``.yml`` file with a top-level ``openapi:`` (or
  ``swagger:``) key, an OpenAPI document. Rules: ``darkfactory.spec._openapi``.
- ``jsonschema``: a ``.json``/``.yaml``/``.yml`` file with a top-level ``$schema`` key, or
  ``type`` and ``properties`` keys, or named ``*.schema.json``/``*.schema.yaml``: a JSON
  Schema. Rules: ``darkfactory.spec._jsonschema``.
- ``ticket``: any other ``.yaml``/``.yml`` file, or a ``.md``/``.markdown`` file whose
  YAML front matter (between ``---`` lines at the very top) has a ``title`` or
  ``acceptance_criteria`` key; the Markdown body is then the description. Keys and rules:
  ``darkfactory.spec._ticket``. (Another ``.json`` file is an error: it is none of these.)
- ``markdown``: any other ``.md``/``.markdown`` file (front matter without those keys is
  ignored). How requirements are found: ``darkfactory.spec._prose``.
- ``text``: any other file, read with the same rules as Markdown.

``--format`` also takes the aliases ``openapi`` (contract), ``json-schema`` and ``schema``
(jsonschema), ``tests`` and ``test-suite`` (testsuite).

Every problem is a ``SpecError`` naming the file, the line or key, and what to do; so is a
file over the limits in ``darkfactory.spec.limits`` (size, checked before reading; binary
content; nesting; YAML alias expansion). Only the formats that need them import
openapi-core or jsonschema, and nothing here imports CrewAI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

from darkfactory.errors import SpecError
from darkfactory.spec._document import JSON_SUFFIXES, load_yaml_text, parse_document
from darkfactory.spec._prose import parse_prose
from darkfactory.spec._ticket import parse_ticket
from darkfactory.spec.limits import MAX_SPEC_BYTES, check_not_binary, check_size, too_big
from darkfactory.spec.model import Spec, SpecFormat

SPEC_FORMATS: tuple[str, ...] = get_args(SpecFormat)
FORMAT_ALIASES = {
    "openapi": "contract",
    "json-schema": "jsonschema",
    "schema": "jsonschema",
    "tests": "testsuite",
    "test-suite": "testsuite",
}
YAML_SUFFIXES = (".yaml", ".yml")
MARKDOWN_SUFFIXES = (".md", ".markdown")
PYTHON_SUFFIXES = (".py",)
#: Front-matter keys that make a Markdown file a ticket.
TICKET_MARKERS = ("title", "acceptance_criteria")
#: File names that make a JSON or YAML file a JSON Schema.
SCHEMA_NAME = re.compile(r"\.schema\.(json|ya?ml)$", re.IGNORECASE)


def load_spec(path: str | Path, *, format: str | None = None) -> Spec:
    """Read the spec at ``path`` into a ``Spec``; ``format`` overrides the detected format."""
    p = Path(path)
    fmt: SpecFormat | None = _check_format(format, p) if format is not None else None
    if fmt == "testsuite" or (fmt is None and (p.is_dir() or p.suffix.lower() in PYTHON_SUFFIXES)):
        from darkfactory.spec._testsuite import parse_test_suite

        return parse_test_suite(p)
    text = read_spec_text(p)
    if fmt is None:
        fmt = detect_format(p, text)
    if fmt == "contract":
        from darkfactory.spec.openapi import parse_openapi

        return parse_openapi(*parse_document(text, file=p), file=p)
    if fmt == "jsonschema":
        from darkfactory.spec.jsonschema import parse_json_schema

        return parse_json_schema(*parse_document(text, file=p), file=p)
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
    if p.is_dir() or suffix in PYTHON_SUFFIXES:
        return "testsuite"
    if suffix in YAML_SUFFIXES or suffix in JSON_SUFFIXES:
        data, _ = parse_document(read_spec_text(p) if text is None else text, file=p)
        kind = document_kind(p, data)
        if kind is not None:
            return kind
        if suffix in JSON_SUFFIXES:
            raise SpecError(
                "a JSON spec must be an OpenAPI document (with an 'openapi' key) or a JSON "
                "Schema (with a '$schema' key, or 'type' and 'properties')",
                file=p,
                line=1,
                hint="for a ticket, write YAML (.yaml); or force a format with --format",
            )
        return "ticket"
    if suffix in MARKDOWN_SUFFIXES:
        front = split_front_matter(read_spec_text(p) if text is None else text)
        if front is not None:
            data, _ = load_yaml_text(front.yaml_text, file=p)
            if isinstance(data, dict) and any(k in data for k in TICKET_MARKERS):
                return "ticket"
        return "markdown"
    return "text"


def document_kind(path: Path, data: Any) -> SpecFormat | None:
    """``contract`` or ``jsonschema`` for parsed JSON/YAML ``data`` that is one, else None."""
    if SCHEMA_NAME.search(path.name):
        return "jsonschema"
    if not isinstance(data, dict):
        return None
    if "openapi" in data or "swagger" in data:
        return "contract"
    if "$schema" in data:
        return "jsonschema"
    if "type" in data and "properties" in data:
        return "jsonschema"
    return None


def read_spec_text(path: Path) -> str:
    """The spec file's text with ``\\n`` line ends.

    Missing, not a regular file, over ``MAX_SPEC_BYTES`` (checked before reading), binary,
    not UTF-8 or empty: a SpecError naming the file (and the line where there is one).
    """
    if path.is_dir():
        raise SpecError(
            "is a directory, not a spec file",
            file=path,
            hint="a directory is read as a test suite: leave out --format or use --format "
            "testsuite; for other formats name the spec file itself, e.g. specs/ticket.yaml",
        )
    if not path.exists():
        raise SpecError(
            "spec file not found",
            file=path,
            hint="check the path (a relative path is taken from the current directory)",
        )
    if not path.is_file():
        raise SpecError(
            "not a regular file (a device, a pipe or a socket)",
            file=path,
            hint="give the path of the spec file itself",
        )
    check_size(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(
            "spec file not found",
            file=path,
            hint="check the path (a relative path is taken from the current directory)",
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot read the spec file: {exc.strerror}", file=path) from None
    if len(data) > MAX_SPEC_BYTES:  # it grew after the check
        raise too_big(path, None)
    check_not_binary(data, file=path)
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
    fmt = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in SPEC_FORMATS:
        raise SpecError(
            f"unknown spec format {fmt!r}",
            file=path,
            hint=f"use one of: {', '.join(SPEC_FORMATS)} (or leave it out to detect it from the file)",
        )
    return cast(SpecFormat, fmt)


def with_target(
    spec: Spec,
    *,
    repo: str | None,
    base: str | None,
    kind: str | None,
    flags: bool = False,
) -> Spec:
    """``spec`` with a repository, base and kind given besides it (``run --repo``, a service
    request's fields) over its own ``repo:`` keys. ``flags``: name them as options."""
    from darkfactory.spec.model import RepoTarget

    name = (lambda k: f"--{k}") if flags else (lambda k: k)
    add = "--repo PATH_OR_URL" if flags else "repo (a path or URL)"
    if repo is None and spec.target is None:
        if base is not None or kind is not None:
            raise SpecError(
                f"{name('base')} and {name('kind')} go with a repository",
                hint=f"add {add}, or repo: in the ticket",
            )
        return spec
    if repo is None and spec.target is not None and not spec.target.repo:
        keys = ", ".join(sorted(spec.target.model_fields_set - {"repo"}))
        raise SpecError(
            f"{spec.source}: the ticket's keys for a repository ({keys}) need one, and it "
            "names none",
            hint=f"add {add}, or repo: in the ticket",
        )
    target = spec.target or RepoTarget(repo=repo or "")
    update = {k: v for k, v in (("repo", repo), ("base", base), ("kind", kind)) if v is not None}
    return spec.model_copy(update={"target": target.model_copy(update=update)})
