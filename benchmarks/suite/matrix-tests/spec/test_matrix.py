from fractions import Fraction

import pytest
from matrix import Matrix


def test_rows_and_shape():
    m = Matrix([[1, 2, 3], [4, 5, 6]])
    assert m.shape == (2, 3)
    assert m.rows == ((1, 2, 3), (4, 5, 6))


def test_ragged_or_empty_rows_are_refused():
    with pytest.raises(ValueError):
        Matrix([[1, 2], [3]])
    with pytest.raises(ValueError):
        Matrix([])


def test_equality_and_identity():
    assert Matrix.identity(2) == Matrix([[1, 0], [0, 1]])
    assert Matrix([[1]]) != Matrix([[2]])


def test_addition_and_scalar_multiplication():
    a = Matrix([[1, 2], [3, 4]])
    assert a + a == Matrix([[2, 4], [6, 8]])
    assert 3 * a == a * 3 == Matrix([[3, 6], [9, 12]])


def test_addition_needs_the_same_shape():
    with pytest.raises(ValueError):
        Matrix([[1, 2]]) + Matrix([[1], [2]])


def test_matrix_product():
    a = Matrix([[1, 2, 3], [4, 5, 6]])
    b = Matrix([[7, 8], [9, 10], [11, 12]])
    assert a @ b == Matrix([[58, 64], [139, 154]])
    with pytest.raises(ValueError):
        a @ a


def test_transpose():
    assert Matrix([[1, 2, 3]]).transpose() == Matrix([[1], [2], [3]])


def test_determinant():
    assert Matrix([[4]]).determinant() == 4
    assert Matrix([[1, 2], [3, 4]]).determinant() == -2
    assert Matrix([[2, 0, 1], [1, 3, 2], [1, 1, 2]]).determinant() == 6
    with pytest.raises(ValueError):
        Matrix([[1, 2]]).determinant()


def test_inverse_is_exact():
    m = Matrix([[2, 1], [7, 4]])
    assert m.inverse() == Matrix([[4, -1], [-7, 2]])
    assert Matrix([[2, 0], [0, 4]]).inverse() == Matrix([[Fraction(1, 2), 0], [0, Fraction(1, 4)]])
    with pytest.raises(ZeroDivisionError):
        Matrix([[1, 2], [2, 4]]).inverse()
