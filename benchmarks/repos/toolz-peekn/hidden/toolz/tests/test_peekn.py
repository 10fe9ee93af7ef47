"""peekn: the first n elements and the whole sequence back (FAIL_TO_PASS)."""

import itertools

import toolz
import toolz.curried
from toolz import peekn


def test_the_first_n_and_the_whole_sequence():
    alist = ("Alice", "Bob", "Carol")
    elements, blist = peekn(2, alist)
    assert elements == ("Alice", "Bob")
    assert tuple(blist) == alist


def test_more_than_the_sequence_has():
    elements, rest = peekn(12, [1, 2, 3])
    assert elements == (1, 2, 3)
    assert list(rest) == [1, 2, 3]


def test_zero_elements():
    elements, rest = peekn(0, iter("abc"))
    assert elements == ()
    assert "".join(rest) == "abc"


def test_a_lazy_infinite_iterator_is_read_only_n_items_ahead():
    seen = []

    def counting():
        for i in itertools.count():
            seen.append(i)
            yield i

    elements, rest = peekn(3, counting())
    assert elements == (0, 1, 2)
    assert seen == [0, 1, 2]
    assert list(itertools.islice(rest, 5)) == [0, 1, 2, 3, 4]


def test_curried_and_exported():
    assert toolz.peekn is peekn
    elements, rest = toolz.curried.peekn(1)([9, 8])
    assert elements == (9,)
    assert list(rest) == [9, 8]
