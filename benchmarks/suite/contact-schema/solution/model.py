"""The contact card data model: ``validate(data)`` checks a decoded JSON document."""

from __future__ import annotations

import re
from typing import Any

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
TAG = re.compile(r"[a-z][a-z0-9-]*")
KINDS = ("person", "organisation")
LABELS = ("home", "work", "mobile")
FIELDS = ("kind", "name", "emails", "phones", "tags", "rating")


def validate(data: Any) -> None:
    """Return None if ``data`` is a valid contact card; raise ValueError saying why if not."""
    if not isinstance(data, dict):
        raise ValueError("a contact must be an object")
    for name in ("kind", "name"):
        if name not in data:
            raise ValueError(f"{name} is required")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown properties: {', '.join(unknown)}")
    if "emails" not in data and "phones" not in data:
        raise ValueError("a contact needs emails or phones")
    if data["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    name = data["name"]
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise ValueError("name must be a string of 1 to 100 characters")
    if "emails" in data:
        _strings(data["emails"], "emails", EMAIL, min_items=1, max_items=None)
    if "phones" in data:
        _phones(data["phones"])
    if "tags" in data:
        _strings(data["tags"], "tags", TAG, min_items=0, max_items=10)
    if "rating" in data:
        rating = data["rating"]
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise ValueError("rating must be an integer from 1 to 5")


def _strings(
    items: Any, where: str, pattern: re.Pattern[str], *, min_items: int, max_items: int | None
) -> None:
    if not isinstance(items, list):
        raise ValueError(f"{where} must be an array")
    if len(items) < min_items or (max_items is not None and len(items) > max_items):
        most = f" and at most {max_items}" if max_items is not None else ""
        raise ValueError(f"{where} must have at least {min_items}{most} items")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise ValueError(f"{where}[{i}] is not valid: {item!r}")
    if len(set(items)) != len(items):
        raise ValueError(f"{where} must not repeat an item")


def _phones(phones: Any) -> None:
    if not isinstance(phones, list):
        raise ValueError("phones must be an array")
    if not 1 <= len(phones) <= 5:
        raise ValueError("phones must have 1 to 5 items")
    for i, phone in enumerate(phones):
        where = f"phones[{i}]"
        if not isinstance(phone, dict):
            raise ValueError(f"{where} must be an object")
        if "number" not in phone:
            raise ValueError(f"{where}.number is required")
        unknown = sorted(set(phone) - {"number", "label"})
        if unknown:
            raise ValueError(f"{where} has unknown properties: {', '.join(unknown)}")
        if not isinstance(phone["number"], str) or not PHONE.fullmatch(phone["number"]):
            raise ValueError(f"{where}.number must be + and 7 to 15 digits")
        if "label" in phone and phone["label"] not in LABELS:
            raise ValueError(f"{where}.label must be one of {', '.join(LABELS)}")
