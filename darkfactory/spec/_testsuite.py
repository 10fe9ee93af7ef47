"""A ``testsuite`` spec: existing pytest or unittest tests are the spec.

**Detected** for a directory, or a ``.py`` file; ``--format testsuite`` forces it.

**Acceptance tests**: every file of the directory (sub-directories included, with their
relative paths; hidden entries, ``__pycache__`` and compiled files left out) is copied to
the run's ``acceptance/`` directory, so ``conftest.py``, helper modules and data files go
along. Only the README (``README``, ``README.md``, ``README.rst``, ``README.txt``) or
``instructions.md`` at the top is not: it becomes the summary (its first heading the title;
else the directory's name). Test files are those pytest collects by default:
``test_*.py`` and ``*_test.py``. A single file must be named that way.

**Requirements**, one per test, in file then line order, each linked to its tests
(``Spec.test_links``, so the tests need no markers):

- a test function (``def test*`` at module level): its docstring's first paragraph, or
  its name in words ("test_adds_two_numbers" -> "Adds two numbers");
- a test class (a ``Test*`` class without ``__init__``, or a ``TestCase`` subclass), with
  all its ``test*`` methods (nested ``Test*`` classes included): its docstring, or its
  name followed by what each method tests (the method's docstring, or its name in
  words): "Loan limit: a member may hold two books at a time".

**Files to create**: the modules the tests import that are not in the suite, not in the
standard library and not installed where Dark Factory runs (the sandbox uses the same
interpreter) must be written by the agents, in the project root: ``import shop.cart``
needs ``shop/__init__.py`` and ``shop/cart.py``, ``from calc import add`` needs
``calc.py``. Imports inside ``try:`` blocks that catch ``ImportError`` and
``pytest.importorskip`` are optional and not counted. The list is ``Spec.files_to_create``
and is repeated in the summary.

**Errors** (SpecErrors naming the file and line): no test, a Python syntax error, a
file that is not UTF-8 text, a file named or linked out of the directory, a suite too
big to be a spec.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from darkfactory.errors import SpecError
from darkfactory.spec.limits import check_size
from darkfactory.spec.model import AcceptanceTest, Requirement, SourceRef, Spec

README_NAMES = ("readme.md", "readme", "readme.rst", "readme.txt", "instructions.md")
TEST_FILE = re.compile(r"^(test_.*|.*_test)\.py$")
SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "venv", "site-packages"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")
MAX_FILES = 500
MAX_BYTES = 5_000_000
MAX_SUMMARY_CHARS = 6000
TESTCASE_BASES = frozenset({"TestCase", "IsolatedAsyncioTestCase"})


@dataclass
class _Test:
    """One requirement's worth of tests: a function, or a class with its methods."""

    keys: list[str]
    text: str
    line: int
    file: Path


def parse_test_suite(path: Path) -> Spec:
    """A ``testsuite`` Spec from a directory of tests, or one test file (see the module doc)."""
    if not path.exists():
        raise SpecError(
            "spec not found",
            file=path,
            hint="check the path (a relative path is taken from the current directory)",
        )
    if path.is_dir():
        root = path
        files = _suite_files(root)
        readme = next(
            (f for f in files if f.parent == root and f.name.lower() in README_NAMES), None
        )
    else:
        if path.suffix.lower() != ".py":
            raise SpecError(
                "a test-suite spec is a directory of tests or one test_*.py file",
                file=path,
                hint="give the directory that holds the tests, or leave out --format",
            )
        if not TEST_FILE.match(path.name):
            raise SpecError(
                "pytest collects test_*.py and *_test.py files only, so this file's tests "
                "would never run",
                file=path,
                hint="rename it test_<name>.py",
            )
        root, files, readme = path.parent, [path], None
    sources: dict[Path, str] = {}
    acceptance: list[AcceptanceTest] = []
    for f in files:
        if f == readme:
            continue
        text = _read(f)
        name = f.relative_to(root).as_posix()
        if f.suffix == ".py":
            sources[f] = text
        acceptance.append(
            AcceptanceTest(name=name, content=text, source=SourceRef(file=str(f), line=1))
        )
    trees = {f: _parse(f, text) for f, text in sources.items()}
    tests = [
        t for f, tree in trees.items() if TEST_FILE.match(f.name) for t in _tests(f, root, tree)
    ]
    if not tests:
        raise SpecError(
            "no tests found" + (" in this directory" if path.is_dir() else " in this file"),
            file=path,
            hint="pytest collects test* functions and Test* classes (or unittest.TestCase "
            "subclasses) in test_*.py and *_test.py files",
        )
    requirements = [
        Requirement(id=f"R{n}", text=t.text, source=SourceRef(file=str(t.file), line=t.line))
        for n, t in enumerate(tests, 1)
    ]
    links = {key: [req.id] for req, t in zip(requirements, tests, strict=True) for key in t.keys}
    to_create = files_to_create(trees, root)
    readme_text = _read(readme) if readme is not None else ""
    return Spec(
        format="testsuite",
        title=_title(readme_text, root if path.is_dir() else path),
        summary=_summary(readme_text, to_create, [t.name for t in acceptance]),
        requirements=requirements,
        acceptance_tests=acceptance,
        source=str(path),
        files_to_create=to_create,
        test_links=links,
    )


def _suite_files(root: Path) -> list[Path]:
    resolved_root = root.resolve()
    out: list[Path] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS)
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(SKIPPED_SUFFIXES):
                continue
            f = Path(dirpath) / name
            rel = f.relative_to(root)
            if not all(SAFE_PART.match(part) for part in rel.parts):
                raise SpecError(
                    f"{rel.as_posix()!r} is not a safe file name for the acceptance directory",
                    file=f,
                    hint="use letters, digits, '_', '-' and '.' in file and directory names",
                )
            if not f.resolve().is_relative_to(resolved_root):
                raise SpecError("links outside the test-suite directory", file=f)
            if not f.is_file():
                continue
            out.append(f)
            total += f.stat().st_size
            if len(out) > MAX_FILES or total > MAX_BYTES:
                raise SpecError(
                    f"the test suite is too big to be a spec (more than {MAX_FILES} files or "
                    f"{MAX_BYTES // 1_000_000} MB)",
                    file=root,
                    hint="point at the directory that holds only the acceptance tests",
                )
    return out


def _read(f: Path) -> str:
    check_size(f, what="the file")
    data = f.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"not UTF-8 text (byte {exc.start}: {exc.reason})",
            file=f,
            line=data[: exc.start].count(b"\n") + 1,
            hint="acceptance files are copied as text: save it as UTF-8, or move it out of "
            "the suite",
        ) from None
    return text.replace("\r\n", "\n")


def _parse(f: Path, text: str) -> ast.Module:
    try:
        return ast.parse(text, filename=str(f))
    except SyntaxError as exc:
        where = f" (column {exc.offset})" if exc.offset else ""
        raise SpecError(
            f"Python syntax error{where}: {exc.msg}",
            file=f,
            line=exc.lineno or 1,
            hint="fix the test file: the tests are the spec",
        ) from None
    except ValueError as exc:  # e.g. a null byte
        raise SpecError(f"not valid Python source: {exc}", file=f, line=1) from None
    except (RecursionError, MemoryError):  # CPython's parser gives up on deep nesting
        raise SpecError(
            "Python source too deeply nested to parse",
            file=f,
            hint="fix the test file: the tests are the spec",
        ) from None


def _tests(f: Path, root: Path, tree: ast.Module) -> list[_Test]:
    prefix = f.relative_to(root).as_posix()
    out = []
    for node in tree.body:
        if _is_test_function(node):
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            text = _doc(node) or _words(node.name)
            out.append(
                _Test(
                    [f"{prefix}::{node.name}"], _with_key(text, prefix, node.name), node.lineno, f
                )
            )
        elif isinstance(node, ast.ClassDef) and _is_test_class(node):
            found = _class_tests(node, f"{prefix}::{node.name}")
            if not found:
                continue
            keys = [key for key, _ in found]
            methods = [_doc(method) or _words(method.name) for _, method in found]
            text = _doc(node) or _class_words(node.name, methods)
            out.append(_Test(keys, _with_key(text, prefix, node.name), node.lineno, f))
    return out


def _is_test_function(node: ast.stmt) -> bool:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.name.startswith(
        "test"
    ):
        return False
    return not any(_is_fixture(d) for d in node.decorator_list)


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Attribute) and target.attr == "fixture") or (
        isinstance(target, ast.Name) and target.id == "fixture"
    )


def _is_test_class(node: ast.ClassDef) -> bool:
    bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
    if bases & TESTCASE_BASES:
        return True
    has_init = any(isinstance(n, ast.FunctionDef) and n.name == "__init__" for n in node.body)
    return node.name.startswith("Test") and not has_init


def _class_tests(
    node: ast.ClassDef, prefix: str
) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """The test methods of a test class (nested test classes included), with their keys."""
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for child in node.body:
        if _is_test_function(child):
            assert isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            found.append((f"{prefix}::{child.name}", child))
        elif isinstance(child, ast.ClassDef) and _is_test_class(child):
            found += _class_tests(child, f"{prefix}::{child.name}")
    return found


def _doc(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    doc = ast.get_docstring(node) or ""
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())


def _words(name: str) -> str:
    words = re.sub(r"^test_?", "", name).replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def _class_words(name: str, methods: list[str]) -> str:
    """A class without a docstring: its name, then what each test method says it tests."""
    base = re.sub(r"^Test_?|_?Tests?$", "", name) or name
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", base).replace("_", " ").strip().lower()
    listed = "; ".join(_lower_first(m.rstrip(".")) for m in methods[:6])
    more = f"; and {len(methods) - 6} more" if len(methods) > 6 else ""
    return f"{spaced[:1].upper()}{spaced[1:]}: {listed}{more}"


def _lower_first(text: str) -> str:
    """``text`` with its first letter lowered, unless it starts an acronym (``ISBN``)."""
    if text[:1].isupper() and not text[1:2].isupper():
        return text[:1].lower() + text[1:]
    return text


def _with_key(text: str, prefix: str, name: str) -> str:
    return f"{text.rstrip('.')} ({prefix}::{name})"


# -- imports -------------------------------------------------------------------------


def files_to_create(trees: dict[Path, ast.Module], root: Path) -> list[str]:
    """Files the tests' imports need that neither the suite nor the interpreter provides."""
    local = _local_modules(trees, root)
    needed: list[str] = []
    for tree in trees.values():
        for module in _imported(tree):
            top = module.split(".")[0]
            if top in local or _available(top) or module in needed:
                continue
            needed.append(module)
    packages = {m.rsplit(".", i)[0] for m in needed for i in range(1, m.count(".") + 1)}
    files: list[str] = []
    for module in sorted({*needed, *packages}):
        path = module.replace(".", "/")
        files.append(f"{path}/__init__.py" if module in packages else f"{path}.py")
    return files


def _local_modules(trees: dict[Path, ast.Module], root: Path) -> set[str]:
    """Top-level names importable from the suite itself (pytest puts test dirs on sys.path)."""
    names: set[str] = {"conftest"}
    dirs = {root, *(f.parent for f in trees)}
    for d in dirs:
        for entry in d.iterdir():
            if entry.suffix == ".py":
                names.add(entry.stem)
            elif entry.is_dir() and (entry / "__init__.py").is_file():
                names.add(entry.name)
    return names


def _imported(tree: ast.Module) -> list[str]:
    """Absolute module names ``tree`` imports for sure (not the optional ones)."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            for child in node.body:
                optional |= {id(n) for n in ast.walk(child)}
    found: list[str] = []
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and _call_name(node.func) in ("importlib.import_module", "import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            found.append(node.args[0].value)
    return found


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        isinstance(k, ast.Name) and k.id in ("ImportError", "ModuleNotFoundError") for k in kinds
    )


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def _available(top: str) -> bool:
    """In the standard library, or installed (looked up on sys.path without the cwd)."""
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "__future__":
        return True
    cwd = os.getcwd()
    search = [p for p in sys.path if p and os.path.abspath(p) != cwd]
    return importlib.machinery.PathFinder.find_spec(top, search) is not None


def _title(readme: str, path: Path) -> str:
    for line in readme.splitlines():
        if m := re.match(r"^#\s+(.+?)\s*#*\s*$", line):
            return m.group(1)
    stem = path.stem if path.is_file() else path.name
    words = " ".join(re.split(r"[\s_.\-]+", stem)).strip() or "Test suite"
    return words[:1].upper() + words[1:]


def _summary(readme: str, to_create: list[str], files: list[str]) -> str:
    about = readme.strip()
    if len(about) > MAX_SUMMARY_CHARS:
        about = about[:MAX_SUMMARY_CHARS] + "\n[... the rest of the README is cut]"
    parts = [about] if about else []
    create = ", ".join(to_create) if to_create else "none: the tests import nothing new"
    parts.append(
        "The acceptance tests are the spec: make every test in acceptance/ pass "
        f"({len(files)} file(s), run as `python -m pytest acceptance` from the project root). "
        f"Files to create in the project root, from what the tests import: {create}."
    )
    return "\n\n".join(parts)
