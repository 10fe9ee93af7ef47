from fractions import Fraction

from matrix import Matrix


def test_fraction_entries():
    m = Matrix([[Fraction(1, 2)]])
    assert (m + m) == Matrix([[1]])


def test_repr_round_trips():
    m = Matrix([[1, 2], [3, 4]])
    assert eval(repr(m)) == m


def test_scalar_fraction():
    assert Fraction(1, 2) * Matrix([[2, 4]]) == Matrix([[1, 2]])
