"""Exact matrix arithmetic on integers and fractions (pure Python)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from numbers import Rational
from typing import Any


def _simplify(value: Any) -> Any:
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    return value


class Matrix:
    """An immutable matrix; every operation returns a new one."""

    __slots__ = ("rows",)
    rows: tuple[tuple[Any, ...], ...]

    def __init__(self, rows: Iterable[Sequence[Any]]) -> None:
        copied = tuple(tuple(row) for row in rows)
        if not copied or not copied[0]:
            raise ValueError("a matrix needs at least one row and one column")
        if any(len(row) != len(copied[0]) for row in copied):
            raise ValueError("every row must have the same length")
        object.__setattr__(self, "rows", copied)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Matrix is immutable")

    @classmethod
    def identity(cls, n: int) -> Matrix:
        """The ``n`` x ``n`` identity matrix."""
        if n < 1:
            raise ValueError("the size must be at least 1")
        return cls([[int(i == j) for j in range(n)] for i in range(n)])

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)``."""
        return len(self.rows), len(self.rows[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Matrix):
            return NotImplemented
        return self.rows == other.rows

    def __hash__(self) -> int:
        return hash(self.rows)

    def __repr__(self) -> str:
        return f"Matrix({[list(row) for row in self.rows]!r})"

    def __add__(self, other: Matrix) -> Matrix:
        if self.shape != other.shape:
            raise ValueError(f"cannot add {self.shape} and {other.shape} matrices")
        return Matrix(
            [
                [a + b for a, b in zip(r, s, strict=True)]
                for r, s in zip(self.rows, other.rows, strict=True)
            ]
        )

    def __mul__(self, scalar: Any) -> Matrix:
        if not isinstance(scalar, Rational):
            return NotImplemented
        return Matrix([[scalar * a for a in row] for row in self.rows])

    __rmul__ = __mul__

    def __matmul__(self, other: Matrix) -> Matrix:
        if self.shape[1] != other.shape[0]:
            raise ValueError(f"cannot multiply {self.shape} by {other.shape}")
        columns = list(zip(*other.rows, strict=True))
        return Matrix(
            [
                [sum(a * b for a, b in zip(row, col, strict=True)) for col in columns]
                for row in self.rows
            ]
        )

    def transpose(self) -> Matrix:
        """Rows become columns."""
        return Matrix(list(zip(*self.rows, strict=True)))

    def _square(self) -> int:
        n, m = self.shape
        if n != m:
            raise ValueError(f"a {n}x{m} matrix is not square")
        return n

    def determinant(self) -> Any:
        """The determinant, exactly (Gaussian elimination on fractions)."""
        n = self._square()
        a = [[Fraction(x) for x in row] for row in self.rows]
        det = Fraction(1)
        for col in range(n):
            pivot = next((r for r in range(col, n) if a[r][col] != 0), None)
            if pivot is None:
                return 0
            if pivot != col:
                a[col], a[pivot] = a[pivot], a[col]
                det = -det
            det *= a[col][col]
            for r in range(col + 1, n):
                factor = a[r][col] / a[col][col]
                a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
        return _simplify(det)

    def inverse(self) -> Matrix:
        """The exact inverse; ``ZeroDivisionError`` for a singular matrix."""
        n = self._square()
        a = [
            [Fraction(x) for x in row] + [Fraction(int(i == j)) for j in range(n)]
            for i, row in enumerate(self.rows)
        ]
        for col in range(n):
            pivot = next((r for r in range(col, n) if a[r][col] != 0), None)
            if pivot is None:
                raise ZeroDivisionError("the matrix is singular")
            a[col], a[pivot] = a[pivot], a[col]
            lead = a[col][col]
            a[col] = [x / lead for x in a[col]]
            for r in range(n):
                if r != col and a[r][col] != 0:
                    factor = a[r][col]
                    a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
        return Matrix([[_simplify(x) for x in row[n:]] for row in a])
