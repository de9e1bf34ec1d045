"""Basic auth in front of the worker's and notify's web server (``CROSSINGS_WEB_CONFIG_FILE``).

Every path asks for a user of ``basic_auth_users`` except ``/healthz`` and ``/readyz``,
which a kubelet or a compose health check probes without credentials and which say
nothing but whether the process is alive and ready (and, when not ready, which partitions
or receivers hold it back). Checking a bcrypt hash takes tens of milliseconds by design,
so it runs off the event loop (which also runs the stream), and a pair of credentials
that passed is remembered for the process's life, as the exporter-toolkit does, under a
keyed digest: the password itself is never kept. An unknown user is checked against a
dummy hash of the same cost, so the answer's timing does not tell which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Mapping

import bcrypt
from aiohttp import web

from streams.settings.web import WebConfig

#: Answered without credentials: the probes'.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
REALM = 'Basic realm="crossings", charset="UTF-8"'
#: Credentials remembered as passed, at most (a scraper uses one pair).
_REMEMBERED = 64

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class BasicAuth:
    """Checks an ``Authorization`` header against bcrypt hashes."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self.users = dict(users)
        self._key = os.urandom(32)
        self._passed: set[bytes] = set()
        cost = min(int(h[4:6]) for h in self.users.values()) if self.users else 4
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=cost))

    async def allows(self, header: str | None) -> bool:
        user, password = _credentials(header)
        if user is None or password is None:
            return False
        digest = hmac.new(self._key, user.encode() + b"\0" + password, hashlib.sha256).digest()
        if digest in self._passed:
            return True
        hashed = self.users.get(user, self._dummy)
        ok = await asyncio.get_running_loop().run_in_executor(None, bcrypt.checkpw, password, hashed)
        ok = ok and user in self.users
        if ok and len(self._passed) < _REMEMBERED:
            self._passed.add(digest)
        return ok


def _credentials(header: str | None) -> tuple[str | None, bytes | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None, None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None, None
    try:
        return user.decode(), password
    except UnicodeDecodeError:
        return None, None


def middlewares(config: WebConfig | None) -> list[Middleware]:
    """aiohttp middlewares for ``config``: none without ``basic_auth_users``."""
    if config is None or not config.users:
        return []
    auth = BasicAuth(config.users)

    @web.middleware
    async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or await auth.allows(request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(status=401, text="401 Unauthorized\n", headers={"WWW-Authenticate": REALM})

    return [basic_auth]
