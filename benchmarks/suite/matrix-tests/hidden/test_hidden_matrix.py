"""Hidden tests of the matrix-tests entry: never shown to the agents."""

import random
from fractions import Fraction
from itertools import permutations

import pytest
from matrix import Matrix


def leibniz(rows):
    n = len(rows)
    total = 0
    for perm in permutations(range(n)):
        inversions = sum(1 for i in range(n) for j in range(i + 1, n) if perm[i] > perm[j])
        product = 1
        for i in range(n):
            product *= rows[i][perm[i]]
        total += (-1) ** inversions * product
    return total


def random_rows(rng, n, m=None):
    return [[rng.randint(-9, 9) for _ in range(m or n)] for _ in range(n)]


def test_determinant_matches_the_leibniz_formula():
    rng = random.Random(1)
    for n in range(1, 6):
        for _ in range(20):
            rows = random_rows(rng, n)
            assert Matrix(rows).determinant() == leibniz(rows)


def test_determinant_with_a_zero_pivot():
    assert Matrix([[0, 1], [1, 0]]).determinant() == -1
    assert Matrix([[0, 0, 1], [0, 1, 0], [1, 0, 0]]).determinant() == -1


def test_inverse_times_matrix_is_identity():
    rng = random.Random(2)
    for n in range(1, 5):
        for _ in range(20):
            m = Matrix(random_rows(rng, n))
            if m.determinant() == 0:
                continue
            assert m @ m.inverse() == Matrix.identity(n)
            assert m.inverse() @ m == Matrix.identity(n)


def test_inverse_with_a_zero_pivot():
    m = Matrix([[0, 2], [3, 0]])
    assert m.inverse() == Matrix([[0, Fraction(1, 3)], [Fraction(1, 2), 0]])


def test_product_is_associative_and_transpose_reverses_it():
    rng = random.Random(3)
    a, b, c = (
        Matrix(random_rows(rng, 2, 3)),
        Matrix(random_rows(rng, 3, 4)),
        Matrix(random_rows(rng, 4, 2)),
    )
    assert (a @ b) @ c == a @ (b @ c)
    assert (a @ b).transpose() == b.transpose() @ a.transpose()


def test_values_are_immutable_and_copied():
    rows = [[1, 2], [3, 4]]
    m = Matrix(rows)
    rows[0][0] = 99
    assert m.rows[0][0] == 1
    with pytest.raises(AttributeError):
        m.rows = ((0,),)


def test_hashable_and_equal_values_hash_alike():
    assert hash(Matrix([[1, 2]])) == hash(Matrix([[1, 2]]))
    assert len({Matrix([[1]]), Matrix([[1]]), Matrix([[2]])}) == 2


def test_not_equal_to_other_types():
    assert Matrix([[1]]) != [[1]]


def test_identity_needs_a_positive_size():
    with pytest.raises(ValueError):
        Matrix.identity(0)


def test_singular_larger_matrix():
    with pytest.raises(ZeroDivisionError):
        Matrix([[1, 2, 3], [4, 5, 6], [7, 8, 9]]).inverse()
