"""Which acceptance test proves which requirement, found statically (``ast``, no import).

A test is linked to a requirement by either of (both count):

- the marker ``@pytest.mark.req("R1", "R2")`` on the test function or on its ``Test*``
  class, or ``pytestmark = pytest.mark.req(...)`` (or a list of marks) in the module or
  the class;
- its name: ``test_r1_counts_words`` proves R1, ``test_r1_r3_...`` proves R1 and R3
  (case-insensitive).

Tests are keyed like pytest node ids relative to the acceptance directory:
``"<file>::<function>"`` and ``"<file>::<Class>::<method>"`` (``<file>`` keeps its
sub-directories: ``api/test_items.py::test_get``). A reference to a requirement the spec
does not define is a ``SpecError`` naming the test and its file. Only ``.py`` files are
read; an acceptance suite's data files (``openapi.json``) are not tests.

A spec that links its tests itself (``Spec.test_links``, set by the test-suite format,
whose tests are the requirements) is taken at its word: its files are not read for marks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from typing import TypedDict

from darkfactory.errors import SpecError
from darkfactory.spec.model import AcceptanceTest, Spec

_NAME_IDS = re.compile(r"^test_((?:r\d+(?:_|$))+)", re.IGNORECASE)
_ID_IN_NAME = re.compile(r"r(\d+)", re.IGNORECASE)

#: A requirement id referenced by a test, with the test-file line that references it.
_Ref = tuple[str, int]


#: A requirement's status in the matrix (report.json ``requirements[].status``).
PASSED, FAILED, NOT_RUN, NO_TEST = "passed", "failed", "not run", "no test"


class MatrixRow(TypedDict):
    """One requirement in the requirement matrix."""

    id: str
    text: str
    tests: list[str]
    #: ``passed``, ``failed`` (one of its tests failed, or did not run while others did),
    #: ``not run`` (none of its tests ran) or ``no test`` (no test proves it).
    status: str
    passed: bool | None  # True: passed; False: failed; None: not run, or no test
    untested_reason: str | None  # why the spec's tests cannot prove it (when known)


def requirement_links(spec: Spec) -> dict[str, list[str]]:
    """Map every acceptance test (``file::test``) to the requirement ids it proves."""
    known = {r.id.casefold(): r.id for r in spec.requirements}
    if spec.test_links is not None:
        return {
            key: [known.get(i.casefold(), i) for i in ids] for key, ids in spec.test_links.items()
        }
    links: dict[str, list[str]] = {}
    for test in spec.acceptance_tests:
        if not test.name.endswith(".py"):
            continue
        tree = _parse(test)
        for key, refs in _tests(test, test.name, tree.body, _pytestmark(tree.body, test)):
            ids: list[str] = []
            for ref, line in refs:
                canonical = known.get(ref.casefold())
                if canonical is None:
                    raise _error(
                        test,
                        line,
                        f"acceptance test {key} refers to requirement {ref}, "
                        "which the spec does not define",
                        hint=f"the spec's requirements are: {', '.join(known.values()) or 'none'}",
                    )
                if canonical not in ids:
                    ids.append(canonical)
            links[key] = ids
    return links


def requirement_matrix(spec: Spec, outcomes: Mapping[str, str]) -> list[MatrixRow]:
    """Each requirement with the tests that prove it and whether they all passed.

    ``outcomes`` maps test keys (as in ``requirement_links``; a pytest parameter suffix
    ``[...]`` is ignored) to outcomes such as ``"passed"`` or ``"failed"``. A requirement
    is ``passed`` when it has tests and every one of them (every parametrisation) passed,
    ``not run`` when none of its tests ran (e.g. the run stopped before verify), ``no test``
    when no test proves it, else ``failed``: a test that did not run while the others
    did proves nothing either.
    """
    links = requirement_links(spec)
    seen: dict[str, list[str]] = {}
    for key, outcome in outcomes.items():
        seen.setdefault(_strip_params(key), []).append(outcome)
    rows: list[MatrixRow] = []
    for req in spec.requirements:
        tests = [key for key, ids in links.items() if req.id in ids]
        if not tests:
            status = NO_TEST
        elif not any(k in seen for k in tests):
            status = NOT_RUN
        elif all(seen.get(k) and all(o == "passed" for o in seen[k]) for k in tests):
            status = PASSED
        else:
            status = FAILED
        rows.append(
            {
                "id": req.id,
                "text": req.text,
                "tests": tests,
                "status": status,
                "passed": {PASSED: True, FAILED: False}.get(status),
                "untested_reason": req.untested_reason,
            }
        )
    return rows


def _strip_params(key: str) -> str:
    head, sep, _ = key.partition("::")
    if not sep or not key.endswith("]"):
        return key
    return f"{head}::{key[len(head) + 2 :].split('[', 1)[0]}"


def _tests(
    test: AcceptanceTest, prefix: str, body: list[ast.stmt], inherited: list[_Ref]
) -> Iterator[tuple[str, list[_Ref]]]:
    """(key, referenced ids) for every test function and ``Test*`` class method in ``body``."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            refs = [*inherited, *_marks(node.decorator_list, test)]
            if m := _NAME_IDS.match(node.name):
                refs += [(f"R{int(n)}", node.lineno) for n in _ID_IN_NAME.findall(m.group(1))]
            yield f"{prefix}::{node.name}", refs
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            own = [*_marks(node.decorator_list, test), *_pytestmark(node.body, test)]
            yield from _tests(test, f"{prefix}::{node.name}", node.body, [*inherited, *own])


def _parse(test: AcceptanceTest) -> ast.Module:
    try:
        return ast.parse(test.content, filename=test.name)
    except (RecursionError, MemoryError):  # CPython's parser gives up on deep nesting
        raise _error(
            test, 1, f"acceptance test {test.name} is too deeply nested to parse as Python"
        ) from None
    except (SyntaxError, ValueError) as exc:
        lineno = getattr(exc, "lineno", None) or 1
        raise _error(
            test, lineno, f"acceptance test {test.name} is not valid Python: {exc}"
        ) from None


def _marks(decorators: list[ast.expr], test: AcceptanceTest) -> list[_Ref]:
    """Requirement ids named by ``pytest.mark.req(...)`` among ``decorators`` (or mark exprs)."""
    refs: list[_Ref] = []
    for dec in decorators:
        if not (isinstance(dec, ast.Call) and _is_req_mark(dec.func)):
            continue
        for arg in dec.args:
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise _error(
                    test,
                    dec.lineno,
                    f"acceptance test {test.name}: pytest.mark.req takes requirement ids as "
                    "string literals",
                    hint='write @pytest.mark.req("R1", "R2")',
                )
            refs.append((arg.value, dec.lineno))
    return refs


def _pytestmark(body: list[ast.stmt], test: AcceptanceTest) -> list[_Ref]:
    refs: list[_Ref] = []
    for node in body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            value = node.value
            marks = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
            refs += _marks(marks, test)
    return refs


def _is_req_mark(func: ast.expr) -> bool:
    """``pytest.mark.req`` or ``mark.req``."""
    if not (isinstance(func, ast.Attribute) and func.attr == "req"):
        return False
    owner = func.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark"
    )


def _error(test: AcceptanceTest, lineno: int, message: str, hint: str | None = None) -> SpecError:
    """A SpecError at ``lineno`` of ``test``, mapped to the spec (or test file) line."""
    src = test.source
    file = src.file if src else test.name
    line = (src.line + lineno - 1) if src and src.line else lineno
    return SpecError(message, file=file, line=line, hint=hint)
