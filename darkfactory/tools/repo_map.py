"""``repo_map``: the workspace's Python classes and functions with signatures, most used first."""

from __future__ import annotations

import ast
import codecs
import gc
import hashlib
import re
import warnings
from dataclasses import dataclass

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool
from darkfactory.tools._source import Source, count, read_source
from darkfactory.workspace.paths import PathRefused, quote

DEFAULT_CHARS = 4000
MAX_CHARS = 40_000
#: Longest signature shown; a longer one is cut.
MAX_SIGNATURE = 160
#: Most parsed files kept between calls (the cache is per process).
MAX_CACHED = 50_000

_IDENTIFIER = re.compile(r"[^\W\d]\w*")


@dataclass(frozen=True)
class Symbol:
    """A class or function: ``parent`` is the index of the enclosing class in the file's list."""

    name: str
    line: int
    depth: int
    text: str
    parent: int | None


@dataclass(frozen=True)
class Parsed:
    """One file's symbols, the identifiers it mentions, and its syntax error, if any."""

    symbols: tuple[Symbol, ...]
    names: frozenset[str]
    error: str | None = None


_cache: dict[str, tuple[bytes, Parsed]] = {}


def parse(key: str, data: bytes) -> Parsed:
    """``data``'s symbols, read with ``ast`` (never imported or run); cached under ``key``
    (the file's path) for as long as its content stays the same."""
    digest = hashlib.blake2b(data, digest_size=16).digest()
    hit = _cache.get(key)
    if hit is not None and hit[0] == digest:
        return hit[1]
    parsed = _parse(data)
    if len(_cache) >= MAX_CACHED:
        _cache.clear()
    _cache[key] = (digest, parsed)
    return parsed


def _parse(data: bytes) -> Parsed:
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes in the source
            tree = ast.parse(data)
        symbols = _Signatures(data).collect(tree.body)
    except SyntaxError as exc:
        return Parsed((), frozenset(), f"syntax error at line {exc.lineno or '?'}")
    except (ValueError, RecursionError, MemoryError):  # NUL bytes, absurd nesting
        return Parsed((), frozenset(), "not parsable")
    names = _IDENTIFIER.findall(data.decode("utf-8", errors="replace"))
    return Parsed(tuple(symbols), frozenset(names))


class _Signatures:
    """The symbols of a parsed file, their signatures cut from its source text.

    Slicing the source is several times faster than ``ast.unparse``; a file that is not
    UTF-8 (an encoding declaration) is unparsed instead, as ``ast`` offsets are UTF-8.
    """

    def __init__(self, data: bytes) -> None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            self.lines: list[bytes] | None = None
        else:
            self.lines = data.splitlines()

    def collect(self, body: list[ast.stmt]) -> list[Symbol]:
        out: list[Symbol] = []
        self._collect(body, 0, None, out)
        return out

    def _collect(
        self, body: list[ast.stmt], depth: int, parent: int | None, out: list[Symbol]
    ) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                out.append(Symbol(node.name, node.lineno, depth, self._class(node), parent))
                self._collect(node.body, depth + 1, len(out) - 1, out)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                out.append(Symbol(node.name, node.lineno, depth, self._def(node), parent))
            elif isinstance(node, ast.If | ast.Try):  # `if TYPE_CHECKING:`, `try: import`
                handlers = [h.body for h in node.handlers] if isinstance(node, ast.Try) else []
                for block in (node.body, node.orelse, *handlers):
                    self._collect(block, depth, parent, out)

    def _text(self, node: ast.expr | ast.keyword) -> str:
        lines = self.lines
        if lines is None or node.end_lineno is None or node.end_col_offset is None:
            return ast.unparse(node)
        first, last = node.lineno - 1, node.end_lineno - 1
        try:
            if first == last:
                return lines[first][node.col_offset : node.end_col_offset].decode()
            raw = b"\n".join(
                [
                    lines[first][node.col_offset :],
                    *lines[first + 1 : last],
                    lines[last][: node.end_col_offset],
                ]
            )
            return " ".join(raw.decode().split())
        except (IndexError, UnicodeDecodeError):  # lines counted otherwise than by ast
            return ast.unparse(node)

    def _class(self, node: ast.ClassDef) -> str:
        parts: list[ast.expr | ast.keyword] = [*node.bases, *node.keywords]
        bases = ", ".join(self._text(b) for b in parts)
        return _cut(f"class {node.name}({bases})" if bases else f"class {node.name}")

    def _def(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
        a = node.args
        params: list[str] = []
        positional = [*a.posonlyargs, *a.args]
        defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
        for i, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
            params.append(self._param(arg, default))
            if a.posonlyargs and i == len(a.posonlyargs) - 1:
                params.append("/")
        if a.vararg is not None:
            params.append("*" + self._param(a.vararg, None))
        elif a.kwonlyargs:
            params.append("*")
        params += [self._param(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
        if a.kwarg is not None:
            params.append("**" + self._param(a.kwarg, None))
        prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        returns = f" -> {self._text(node.returns)}" if node.returns else ""
        return _cut(f"{prefix} {node.name}({', '.join(params)}){returns}")

    def _param(self, arg: ast.arg, default: ast.expr | None) -> str:
        if arg.annotation is None:
            return arg.arg if default is None else f"{arg.arg}={self._text(default)}"
        text = f"{arg.arg}: {self._text(arg.annotation)}"
        return text if default is None else f"{text} = {self._text(default)}"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SIGNATURE else text[: MAX_SIGNATURE - 4] + " ..."


# -- ranking and the budget ----------------------------------------------------------------


def _scores(parsed: dict[str, Parsed]) -> dict[tuple[str, int], float]:
    """Each symbol's score: the files that mention its name, other than those defining it,
    divided by how many files define it (a name defined everywhere says little)."""
    definers: dict[str, set[str]] = {}
    for path, p in parsed.items():
        for s in p.symbols:
            definers.setdefault(s.name, set()).add(path)
    used_by: dict[str, int] = dict.fromkeys(definers, 0)
    for path, p in parsed.items():
        for name in p.names & definers.keys():
            if path not in definers[name]:
                used_by[name] += 1
    scores: dict[tuple[str, int], float] = {}
    for path, p in parsed.items():
        for i, s in enumerate(p.symbols):
            if s.name == "__init__" and s.parent is not None:
                scores[path, i] = scores[path, s.parent]  # shown with its class
            elif s.name.startswith("__") and s.name.endswith("__"):
                scores[path, i] = 0.0
            else:
                scores[path, i] = used_by[s.name] / len(definers[s.name])
    return scores


def render(src: Source, parsed: dict[str, Parsed], budget: int) -> str:
    """The map of ``parsed`` cut to ``budget`` characters, best-scored symbols first."""
    scores = _scores(parsed)
    ranked = sorted(
        scores,
        key=lambda k: (
            -scores[k],
            parsed[k[0]].symbols[k[1]].depth,
            parsed[k[0]].symbols[k[1]].name.startswith("_"),
            k,
        ),
    )
    where = quote(src.base or ".")
    header = (
        f"Python classes and functions under {where} ({count(len(parsed), 'file')}, most "
        "used first; 'line: definition', for read_file's start_line):"
    )
    used = len(header)
    chosen: dict[str, set[int]] = {}  # path -> chosen symbol indexes, in first-chosen order
    for path, i in ranked:
        symbols = parsed[path].symbols
        taken = chosen.get(path, set())
        if i in taken:
            continue
        need = [i]
        while (up := symbols[need[-1]].parent) is not None and up not in taken:
            need.append(up)  # a method is shown under its class
        cost = sum(len(_line(symbols[j])) + 1 for j in need)
        if path not in chosen:
            cost += len(path) + 1
        if used + cost > budget:
            continue
        used += cost
        chosen.setdefault(path, set()).update(need)
    out = [header]
    for path, taken in chosen.items():
        out.append(path)
        out.extend(_line(parsed[path].symbols[j]) for j in sorted(taken))
    total = sum(len(p.symbols) for p in parsed.values())
    shown = sum(len(t) for t in chosen.values())
    if shown < total:
        files_left = sum(1 for path, p in parsed.items() if p.symbols and path not in chosen)
        unseen = f" ({count(files_left, 'file')} not shown at all)" if files_left else ""
        out.append(
            f"[left out: {total - shown} of {count(total, 'symbol')}, the least used{unseen}; "
            f"raise max_chars (up to {MAX_CHARS}) or map a subdirectory or file]"
        )
    broken = [f"{path} ({p.error})" for path, p in parsed.items() if p.error]
    if broken:
        more = f" and {len(broken) - 5} more" if len(broken) > 5 else ""
        out.append(f"[not parsed: {', '.join(broken[:5])}{more}]")
    if note := src.skipped_note():
        out.append(note)
    return "\n".join(out)


def _line(s: Symbol) -> str:
    return f"{'  ' * (s.depth + 1)}{s.line}: {s.text}"


class RepoMapArgs(ToolArgs):
    path: str = Field(
        default=".", description="Directory or .py file to map, e.g. 'src'. Default: all."
    )
    max_chars: int = Field(
        default=DEFAULT_CHARS,
        ge=500,
        le=MAX_CHARS,
        description=f"Size limit of the map in characters (default {DEFAULT_CHARS}).",
    )


class RepoMapTool(WorkspaceTool):
    name: str = "repo_map"
    description: str = (
        "Map the workspace's Python code: each file's classes, methods and functions with "
        "signatures and line numbers, names most used by other files first, cut to max_chars "
        "with a count of what was left out. Parses the code, never runs it. Skips non-Python "
        "files, .git, caches, virtualenvs, symlinks (not followed) and files over 1 MiB; "
        "refuses paths outside the workspace."
    )
    args_schema: type[BaseModel] = RepoMapArgs

    def _run(self, path: str = ".", max_chars: int = DEFAULT_CHARS) -> str:
        ctx = self.run_context
        try:
            src = read_source(ctx, path, lambda p: p.endswith((".py", ".pyi")))
        except PathRefused as refused:
            ctx.emit("file_op", tool=self.name, path=path[:300], ok=False, bytes=0)
            return f"ERROR: {refused.message}"
        ctx.emit(
            "file_op",
            tool=self.name,
            path=path[:300],
            ok=True,
            bytes=sum(len(d) for _, d in src.files),
        )
        if not src.files:
            where = quote(src.base or ".")
            note = src.skipped_note()
            return f"No Python files under {where}.{' ' + note if note else ''}"
        # Parsing allocates millions of short-lived nodes; the cyclic collector walking a
        # big process's heap again and again would double the time. Nothing here has cycles.
        collecting = gc.isenabled()
        gc.disable()
        try:
            parsed = {rel: parse(f"{ctx.workspace}/{rel}", data) for rel, data in src.files}
        finally:
            if collecting:
                gc.enable()
        return render(src, parsed, max(500, min(max_chars, MAX_CHARS)))
