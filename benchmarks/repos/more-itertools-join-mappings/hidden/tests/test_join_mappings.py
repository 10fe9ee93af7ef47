"""join_mappings joins mappings on their keys (FAIL_TO_PASS)."""

from collections import OrderedDict
from types import MappingProxyType
from unittest import TestCase

import more_itertools as mi


class JoinMappingsTests(TestCase):
    def test_three_mappings_with_the_same_keys(self):
        salary = {"e1": 12, "e2": 23, "e3": 34}
        dept = {"e1": "eng", "e2": "sales", "e3": "eng"}
        service = {"e1": 5, "e2": 9, "e3": 2}
        self.assertEqual(
            mi.join_mappings(salary=salary, dept=dept, service=service),
            {
                "e1": {"salary": 12, "dept": "eng", "service": 5},
                "e2": {"salary": 23, "dept": "sales", "service": 9},
                "e3": {"salary": 34, "dept": "eng", "service": 2},
            },
        )

    def test_no_mappings(self):
        self.assertEqual(mi.join_mappings(), {})

    def test_a_key_missing_from_some_mappings(self):
        found = mi.join_mappings(a={1: "x", 2: "y"}, b={2: "z", 3: "w"})
        self.assertEqual(found, {1: {"a": "x"}, 2: {"a": "y", "b": "z"}, 3: {"b": "w"}})

    def test_the_result_is_a_plain_dict_of_dicts(self):
        found = mi.join_mappings(score=OrderedDict(ann=1), time=MappingProxyType({"ann": 2}))
        self.assertIs(type(found), dict)
        self.assertIs(type(found["ann"]), dict)
        self.assertEqual(list(found["ann"]), ["score", "time"])

    def test_it_is_exported(self):
        from more_itertools import more
        from more_itertools.more import join_mappings

        self.assertIn("join_mappings", more.__all__)

        self.assertIs(join_mappings, mi.join_mappings)
