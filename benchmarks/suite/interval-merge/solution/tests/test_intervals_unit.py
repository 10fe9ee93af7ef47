from intervals import covered, gaps, merge


def test_negative_intervals():
    assert merge([(-5, -2), (-3, 0)]) == [(-5, 0)]


def test_lists_are_accepted():
    assert merge([[1, 2]]) == [(1, 2)]


def test_gap_at_both_ends():
    assert gaps([(3, 4)], 0, 6) == [(0, 3), (4, 6)]


def test_covered_counts_overlap_once():
    assert covered([(0, 5), (0, 5)]) == 5
