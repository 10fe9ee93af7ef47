"""Hidden tests of the interval-merge entry: never shown to the agents."""

import random
from itertools import pairwise

import pytest
from intervals import covered, gaps, insert, merge


def points(intervals):
    return {x for s, e in intervals for x in range(s, e)}


def test_random_unions_match_point_sets():
    rng = random.Random(3)
    for _ in range(300):
        data = []
        for _ in range(rng.randint(0, 8)):
            s = rng.randint(-20, 20)
            data.append((s, s + rng.randint(0, 6)))
        merged = merge(data)
        assert points(merged) == points(data)
        assert all(s < e for s, e in merged)
        assert all(a[1] < b[0] for a, b in pairwise(merged))
        assert covered(data) == len(points(data))


def test_result_items_are_tuples():
    assert all(isinstance(i, tuple) for i in merge([[1, 2], [2, 3]]))


def test_merge_of_one_interval_inside_another():
    assert merge([(0, 10), (2, 3)]) == [(0, 10)]


def test_insert_joins_several():
    assert insert([(1, 2), (3, 4), (5, 6), (8, 9)], (2, 5)) == [(1, 6), (8, 9)]


def test_insert_empty_interval_changes_nothing():
    assert insert([(1, 2)], (5, 5)) == [(1, 2)]


def test_gaps_with_intervals_outside_the_range():
    assert gaps([(-5, 1), (3, 4), (9, 20)], 0, 10) == [(1, 3), (4, 9)]
    assert gaps([], 3, 7) == [(3, 7)]


def test_covered_of_nothing():
    assert covered([]) == 0


def test_invalid_interval_in_insert():
    with pytest.raises(ValueError):
        insert([(1, 2)], (4, 3))
