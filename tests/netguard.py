"""Loopback only: the in-process guard and the pip settings every test session uses.

``refuse_outside_network()`` replaces ``socket.socket.connect``/``connect_ex`` so that a
connection to an address other than loopback (or a Unix socket: the docker SDK talks to
``/var/run/docker.sock``) is refused and remembered. conftest.py installs it for the whole
session; ``outside_network_refused()`` (the ``no_outside_network`` fixture of loopback.py)
installs another for one block and asserts that nothing was attempted.

A subprocess has its own sockets, so ``PIP_ENV`` keeps any pip a test starts off the
public index: no pip setting of the developer's shell or pip.conf, and an index on
loopback, where nothing listens until ``pypi_local`` serves one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import pytest

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
#: An index URL on loopback that refuses connections (port 9, "discard", has no listener).
NO_INDEX_URL = "http://127.0.0.1:9/simple/"
#: What pip in a test session reads from the environment (every other ``PIP_*`` is removed).
PIP_ENV = {
    "PIP_CONFIG_FILE": os.devnull,  # pip reads no pip.conf at all
    "PIP_INDEX_URL": NO_INDEX_URL,
    "PIP_RETRIES": "0",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
#: Proxy variables would send a request for 127.0.0.1 to the proxy's host instead.
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


def loopback_only_environment(environ: MutableMapping[str, str]) -> None:
    """Apply ``PIP_ENV`` to ``environ``: drop other ``PIP_*`` and proxy variables."""
    for name in list(environ):
        if name.startswith("PIP_") or name.lower() in PROXY_VARS:
            del environ[name]
    environ.update(PIP_ENV)


def is_loopback(host: object) -> bool:
    if host in LOOPBACK or host == "localhost.":
        return True
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def refuse_outside_network() -> tuple[list[str], Callable[[], None]]:
    """Refuse (and list) connections beyond loopback and Unix sockets: (attempts, undo)."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return True
        return isinstance(address, tuple) and bool(address) and is_loopback(address[0])

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            attempts.append(repr(address))
            raise ConnectionRefusedError(f"test: no network beyond loopback ({address!r})")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(sock, address):
            attempts.append(repr(address))
            return 111  # ECONNREFUSED
        return real_connect_ex(sock, address)

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", connect)
    mp.setattr(socket.socket, "connect_ex", connect_ex)
    return attempts, mp.undo


@contextlib.contextmanager
def outside_network_refused() -> Iterator[list[str]]:
    """``refuse_outside_network`` for one block, which must have attempted nothing."""
    attempts, undo = refuse_outside_network()
    try:
        yield attempts
    finally:
        undo()
    assert attempts == [], f"the test tried to reach beyond loopback: {attempts}"
