"""An in-memory inventory over HTTP (WSGI, standard library only)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

SKU = re.compile(r"[A-Z0-9]{3,12}")
REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
}


class Inventory:
    """Items by SKU: ``{"sku": ..., "name": ..., "quantity": ...}``."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def listing(self, max_quantity: int | None = None) -> list[dict[str, Any]]:
        """The items sorted by SKU, only those with at most ``max_quantity`` if given."""
        return [
            item
            for sku, item in sorted(self.items.items())
            if max_quantity is None or item["quantity"] <= max_quantity
        ]


INVENTORY = Inventory()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI entry point (mounted anywhere: it routes on PATH_INFO)."""
    status, body = route(environ, INVENTORY)
    start_response(f"{status} {REASONS[status]}", [("Content-Type", "application/json")])
    return [json.dumps(body).encode("utf-8")]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _body(environ: dict[str, Any]) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return json.loads(environ["wsgi.input"].read(length) or b"null")


def route(environ: dict[str, Any], inventory: Inventory) -> tuple[int, Any]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO") or "/"
    try:
        if path == "/items" and method == "GET":
            return list_items(environ, inventory)
        if path == "/items" and method == "POST":
            return add_item(_body(environ), inventory)
        match = re.fullmatch(r"/items/([^/]+)", path)
        if match is None:
            return 404, {"error": f"no such path {path}"}
        item = inventory.items.get(match.group(1))
        if item is None:
            return 404, {"error": f"no item {match.group(1)}"}
        if method == "GET":
            return 200, item
        if method == "PATCH":
            return adjust(item, _body(environ))
    except (ValueError, json.JSONDecodeError):
        return 422, {"error": "the body must be JSON"}
    return 405, {"error": f"{method} is not allowed on {path}"}


def list_items(environ: dict[str, Any], inventory: Inventory) -> tuple[int, Any]:
    values = parse_qs(environ.get("QUERY_STRING", "")).get("max_quantity")
    if not values:
        return 200, inventory.listing()
    if not values[-1].isdigit():
        return 400, {"error": "max_quantity must be a whole number, at least 0"}
    return 200, inventory.listing(int(values[-1]))


def add_item(data: Any, inventory: Inventory) -> tuple[int, Any]:
    if not isinstance(data, dict) or set(data) != {"sku", "name", "quantity"}:
        return 422, {"error": "an item has exactly sku, name and quantity"}
    if not isinstance(data["sku"], str) or not SKU.fullmatch(data["sku"]):
        return 422, {"error": "sku must be 3 to 12 upper-case letters and digits"}
    if not isinstance(data["name"], str) or not data["name"]:
        return 422, {"error": "name must be a non-empty string"}
    if not _is_int(data["quantity"]) or data["quantity"] < 0:
        return 422, {"error": "quantity must be a whole number, at least 0"}
    if data["sku"] in inventory.items:
        return 409, {"error": f"item {data['sku']} exists"}
    item = {"sku": data["sku"], "name": data["name"], "quantity": data["quantity"]}
    inventory.items[item["sku"]] = item
    return 201, item


def adjust(item: dict[str, Any], data: Any) -> tuple[int, Any]:
    if not isinstance(data, dict) or set(data) != {"delta"} or not _is_int(data["delta"]):
        return 422, {"error": 'the body must be {"delta": <whole number>}'}
    quantity = item["quantity"] + data["delta"]
    if quantity < 0:
        return 409, {"error": f"only {item['quantity']} of {item['sku']} in stock"}
    item["quantity"] = quantity
    return 200, item
