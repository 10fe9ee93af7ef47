"""The purchase order data model: ``validate(data)`` checks a decoded JSON document."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

ORDER_ID = re.compile(r"PO-[0-9]{6}")
CURRENCIES = ("EUR", "USD", "GBP")
STATUSES = ("draft", "submitted", "paid")
REQUIRED = ("id", "currency", "lines", "status")
FIELDS = (*REQUIRED, "note", "discount_percent")
LINE_FIELDS = ("sku", "quantity", "unit_price")
CENT = Decimal("0.01")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(data: Any) -> None:
    """Return None if ``data`` is a valid purchase order; raise ValueError saying why if not."""
    if not isinstance(data, dict):
        raise ValueError("a purchase order must be an object")
    for name in REQUIRED:
        if name not in data:
            raise ValueError(f"{name} is required")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown properties: {', '.join(unknown)}")
    if not isinstance(data["id"], str) or not ORDER_ID.fullmatch(data["id"]):
        raise ValueError("id must be 'PO-' followed by six digits")
    if data["currency"] not in CURRENCIES:
        raise ValueError(f"currency must be one of {', '.join(CURRENCIES)}")
    if data["status"] not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    lines = data["lines"]
    if not isinstance(lines, list):
        raise ValueError("lines must be an array")
    if not 1 <= len(lines) <= 50:
        raise ValueError("lines must have 1 to 50 items")
    for i, line in enumerate(lines):
        _line(line, f"lines[{i}]")
    if "note" in data:
        if not isinstance(data["note"], str):
            raise ValueError("note must be a string")
        if len(data["note"]) > 200:
            raise ValueError("note must have at most 200 characters")
    if "discount_percent" in data:
        discount = data["discount_percent"]
        if not _is_number(discount):
            raise ValueError("discount_percent must be a number")
        if not 0 <= discount <= 50:
            raise ValueError("discount_percent must be between 0 and 50")


def _line(line: Any, where: str) -> None:
    if not isinstance(line, dict):
        raise ValueError(f"{where} must be an object")
    for name in LINE_FIELDS:
        if name not in line:
            raise ValueError(f"{where}.{name} is required")
    unknown = sorted(set(line) - set(LINE_FIELDS))
    if unknown:
        raise ValueError(f"{where} has unknown properties: {', '.join(unknown)}")
    sku = line["sku"]
    if not isinstance(sku, str) or not 3 <= len(sku) <= 12:
        raise ValueError(f"{where}.sku must be a string of 3 to 12 characters")
    quantity = line["quantity"]
    if not _is_integer(quantity) or not 1 <= quantity <= 1000:
        raise ValueError(f"{where}.quantity must be an integer from 1 to 1000")
    price = line["unit_price"]
    if not _is_number(price) or price <= 0:
        raise ValueError(f"{where}.unit_price must be a number greater than 0")
    if Decimal(str(price)) % CENT != 0:
        raise ValueError(f"{where}.unit_price must be a whole number of cents")
