"""typedkey tells keyword arguments of different types apart (FAIL_TO_PASS)."""

import unittest

import cachetools
import cachetools.keys


class TypedKeywordsTest(unittest.TestCase):
    def test_typedkey_keyword_types_differ(self):
        key = cachetools.keys.typedkey
        self.assertNotEqual(key(x=1), key(x=1.0))
        self.assertNotEqual(key(1, x=True), key(1, x=1))
        self.assertEqual(key(1, x=2), key(1, x=2))

    def test_typed_cached_function_keeps_keyword_types_apart(self):
        calls = []

        @cachetools.cached(cachetools.LRUCache(10), key=cachetools.keys.typedkey)
        def half(value=0):
            calls.append(value)
            return value / 2 if isinstance(value, float) else value // 2

        self.assertEqual(half(value=3), 1)
        self.assertEqual(half(value=3.0), 1.5)
        self.assertEqual(calls, [3, 3.0])

    def test_typedkey_keyword_order_does_not_matter(self):
        key = cachetools.keys.typedkey
        self.assertEqual(key(a=1, b="x"), key(b="x", a=1))
        self.assertNotEqual(key(a=1, b="x"), key(a=1.0, b="x"))
