"""A reference implementation of ``petstore.yaml``: the in-memory pet store as a WSGI app.

Standard library only, as the contract convention asks (``app`` in ``service.py``). The
contract tests in tests/test_spec_petstore.py copy this file to ``service.py`` and run the
tests generated from ``petstore.yaml`` against it; a copy with one response broken must
fail them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

PET_STATUSES = ("available", "pending", "sold")
Response = tuple[int, Any, dict[str, str]]
NO_CONTENT: Any = object()


class Petstore:
    """The WSGI app: pets, orders and users in dictionaries, lost on restart."""

    def __init__(self) -> None:
        self.pets: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = [
            ("PUT", re.compile(r"/pet"), self.update_pet),
            ("POST", re.compile(r"/pet"), self.add_pet),
            ("GET", re.compile(r"/pet/findByStatus"), self.find_by_status),
            ("GET", re.compile(r"/pet/findByTags"), self.find_by_tags),
            ("GET", re.compile(r"/pet/([^/]+)"), self.get_pet),
            ("POST", re.compile(r"/pet/([^/]+)"), self.update_pet_with_form),
            ("DELETE", re.compile(r"/pet/([^/]+)"), self.delete_pet),
            ("POST", re.compile(r"/pet/([^/]+)/uploadImage"), self.upload_image),
            ("GET", re.compile(r"/store/inventory"), self.inventory),
            ("POST", re.compile(r"/store/order"), self.place_order),
            ("GET", re.compile(r"/store/order/([^/]+)"), self.get_order),
            ("DELETE", re.compile(r"/store/order/([^/]+)"), self.delete_order),
            ("POST", re.compile(r"/user"), self.create_user),
            ("POST", re.compile(r"/user/createWithList"), self.create_users),
            ("GET", re.compile(r"/user/login"), self.login),
            ("GET", re.compile(r"/user/logout"), self.logout),
            ("GET", re.compile(r"/user/([^/]+)"), self.get_user),
            ("PUT", re.compile(r"/user/([^/]+)"), self.update_user),
            ("DELETE", re.compile(r"/user/([^/]+)"), self.delete_user),
        ]

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        status, body, headers = error(404, "no such operation")
        for verb, pattern, handler in self.routes:
            m = pattern.fullmatch(path)
            if m and verb == method:
                status, body, headers = handler(*m.groups(), query=query, raw=raw)
                break
        data = b"" if body is NO_CONTENT else json.dumps(body).encode()
        head = [("Content-Length", str(len(data))), *headers.items()]
        if data:
            head.append(("Content-Type", "application/json"))
        start_response(f"{status} {REASONS.get(status, 'Status')}", head)
        return [data]

    # -- pets ------------------------------------------------------------------------

    def add_pet(self, *, query: Query, raw: bytes) -> Response:
        pet = pet_from(raw)
        if pet is None:
            return empty(400)
        self.pets[pet["id"]] = pet
        return 200, public(pet), {}

    def update_pet(self, *, query: Query, raw: bytes) -> Response:
        pet = pet_from(raw)
        if pet is None:
            return empty(400)
        if pet["id"] not in self.pets:
            return empty(404)
        self.pets[pet["id"]] = pet
        return 200, public(pet), {}

    def find_by_status(self, *, query: Query, raw: bytes) -> Response:
        wanted = query.get("status") or ["available"]
        if any(s not in PET_STATUSES for s in wanted):
            return empty(400)
        return 200, [public(p) for p in self.pets.values() if p.get("status") in wanted], {}

    def find_by_tags(self, *, query: Query, raw: bytes) -> Response:
        wanted = set(query.get("tags") or [])
        found = [
            public(p)
            for p in self.pets.values()
            if wanted & {t.get("name") for t in p.get("tags") or []}
        ]
        return 200, found, {}

    def get_pet(self, pet_id: str, *, query: Query, raw: bytes) -> Response:
        if not pet_id.isdigit():
            return empty(400)
        pet = self.pets.get(int(pet_id))
        return (200, public(pet), {}) if pet is not None else empty(404)

    def update_pet_with_form(self, pet_id: str, *, query: Query, raw: bytes) -> Response:
        pet = self.pets.get(int(pet_id)) if pet_id.isdigit() else None
        if pet is None:
            return empty(400)
        for key in ("name", "status"):
            if key in query:
                pet[key] = query[key][0]
        return 200, public(pet), {}

    def delete_pet(self, pet_id: str, *, query: Query, raw: bytes) -> Response:
        if not pet_id.isdigit():
            return empty(400)
        self.pets.pop(int(pet_id), None)
        return empty(200)

    def upload_image(self, pet_id: str, *, query: Query, raw: bytes) -> Response:
        if not pet_id.isdigit() or int(pet_id) not in self.pets:
            return empty(404)
        if not raw:
            return empty(400)
        return 200, {"code": 200, "type": "unknown", "message": f"{len(raw)} bytes"}, {}

    # -- store -----------------------------------------------------------------------

    def inventory(self, *, query: Query, raw: bytes) -> Response:
        counts: dict[str, int] = {}
        for pet in self.pets.values():
            status = str(pet.get("status") or "unknown")
            counts[status] = counts.get(status, 0) + 1
        return 200, counts, {}

    def place_order(self, *, query: Query, raw: bytes) -> Response:
        order = json_object(raw)
        if order is None or not isinstance(order.get("id"), int):
            return empty(400)
        self.orders[order["id"]] = order
        return 200, order, {}

    def get_order(self, order_id: str, *, query: Query, raw: bytes) -> Response:
        if not order_id.isdigit():
            return empty(400)
        order = self.orders.get(int(order_id))
        return (200, order, {}) if order is not None else empty(404)

    def delete_order(self, order_id: str, *, query: Query, raw: bytes) -> Response:
        if not order_id.isdigit():
            return empty(400)
        return empty(200) if self.orders.pop(int(order_id), None) is not None else empty(404)

    # -- users -----------------------------------------------------------------------

    def create_user(self, *, query: Query, raw: bytes) -> Response:
        user = json_object(raw)
        if user is None or not isinstance(user.get("username"), str):
            return error(400, "a user needs a username")
        self.users[user["username"]] = user
        return 200, user, {}

    def create_users(self, *, query: Query, raw: bytes) -> Response:
        try:
            users = json.loads(raw or b"null")
        except ValueError:
            users = None
        if not isinstance(users, list) or not users:
            return error(400, "give a list of users")
        for user in users:
            self.users[str(user.get("username"))] = user
        return 200, users[-1], {}

    def login(self, *, query: Query, raw: bytes) -> Response:
        name = (query.get("username") or [""])[0]
        password = (query.get("password") or [""])[0]
        user = self.users.get(name)
        if user is None or user.get("password") != password:
            return empty(400)
        headers = {"X-Rate-Limit": "5000", "X-Expires-After": "2030-01-01T00:00:00Z"}
        return 200, f"logged in user session: {name}", headers

    def logout(self, *, query: Query, raw: bytes) -> Response:
        return empty(200)

    def get_user(self, name: str, *, query: Query, raw: bytes) -> Response:
        user = self.users.get(name)
        return (200, user, {}) if user is not None else empty(404)

    def update_user(self, name: str, *, query: Query, raw: bytes) -> Response:
        changes = json_object(raw)
        if changes is None:
            return empty(400)
        if name not in self.users:
            return empty(404)
        self.users[name].update(changes)
        return empty(200)

    def delete_user(self, name: str, *, query: Query, raw: bytes) -> Response:
        return empty(200) if self.users.pop(name, None) is not None else empty(404)


Query = dict[str, list[str]]
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


def empty(status: int) -> Response:
    return status, NO_CONTENT, {}


def error(status: int, message: str) -> Response:
    return status, {"code": str(status), "message": message}, {}


def json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def pet_from(raw: bytes) -> dict[str, Any] | None:
    """A valid pet from a request body, or None (the document's 400 responses)."""
    pet = json_object(raw)
    if pet is None or not isinstance(pet.get("id"), int) or not isinstance(pet.get("name"), str):
        return None
    urls = pet.get("photoUrls")
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        return None
    if pet.get("status") not in (None, *PET_STATUSES):
        return None
    return pet


def public(pet: dict[str, Any]) -> dict[str, Any]:
    """A pet as the responses show it."""
    return dict(pet)


app = Petstore()
