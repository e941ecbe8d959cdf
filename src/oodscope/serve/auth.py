"""Who may use the scoring service, and the record of each request.

* **API key**: read from a file or the ``OODSCOPE_API_KEY`` environment variable (:func:`read_key`;
  never from the command line, where other users of the machine see it in the process list). With
  a key, :class:`BearerAuth` answers every request but ``/health`` with 401 unless it carries
  ``Authorization: Bearer <key>`` (RFC 6750, "The OAuth 2.0 Authorization Framework: Bearer Token
  Usage", Jones & Hardt, 2012), compared in constant time (:func:`hmac.compare_digest`). It wraps
  the whole application, so an endpoint added later is protected too.
* **Where it may listen**: :func:`bind_check` refuses a service without a key on an address other
  than loopback (127.0.0.0/8, ::1, localhost) unless ``--no-auth`` says so explicitly, and gives the
  line the service logs first: whether it is protected, and if not, who can reach it.
* **Access log**: :class:`AccessLog` logs one line per request on the ``oodscope.serve`` logger:
  method, path, status, number of images, duration and client address, and for a failure its
  message; never the request's body (no image bytes, no pixel values).

Both middlewares are plain ASGI callables (no web framework is imported here).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from oodscope.errors import InputError

ENV_KEY = "OODSCOPE_API_KEY"
OPEN_PATHS = ("/health",)
LOG = logging.getLogger("oodscope.serve")
RECORD = "oodscope.access"  # the scope key under which a request's log record is kept

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def check_key(key: str, source: str) -> str:
    """``key`` stripped, if it can be a bearer token: non-empty, visible ASCII, no spaces.

    Raises:
        InputError: naming ``source`` (never the key).
    """
    key = key.strip()
    if not key:
        raise InputError(f"{source}: the API key is empty")
    if not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise InputError(f"{source}: the API key must be visible ASCII characters without spaces "
                         "(it travels in an HTTP header)")
    return key


def read_key(path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key: the content of the file at ``path`` (stripped) if given, else the
    ``OODSCOPE_API_KEY`` environment variable, else None.

    Raises:
        InputError: an unreadable or empty file, or an empty variable (one line, never the key).
    """
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise InputError(f"--api-key-file {path}: cannot read the API key ({reason})") from None
        return check_key(text, f"--api-key-file {path}")
    value = (os.environ if environ is None else environ).get(ENV_KEY)
    if value is None:
        return None
    return check_key(value, f"the {ENV_KEY} environment variable (unset it to serve without a key)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address: 127.0.0.0/8, ::1 or localhost (a name or an address
    that only this machine can reach); 0.0.0.0, :: and every other name are not."""
    h = host.strip().lower().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h.split("%")[0]).is_loopback
    except ValueError:
        return False


def bind_check(host: str, port: int, api_key: str | None, no_auth: bool) -> tuple[int, str]:
    """Whether the service may listen on ``host:port``, and the line it logs first (a logging
    level and the message).

    Raises:
        InputError: no key and a non-loopback host without ``no_auth``; or a key and ``no_auth``.
    """
    where = f"{host}:{port}"
    if api_key is not None:
        if no_auth:
            raise InputError(f"--no-auth contradicts the API key given (--api-key-file or {ENV_KEY}): give one or the other")
        return logging.INFO, (f"authentication on: every endpoint but /health needs the header "
                              f"'Authorization: Bearer <API key>' (serving on {where})")
    if no_auth:
        return logging.WARNING, (f"NO AUTHENTICATION (--no-auth): the service is open to anyone who can reach "
                                 f"{where}")
    if not is_loopback(host):
        raise InputError(f"refusing to serve on {host}, which is not a loopback address, without authentication: "
                         f"give an API key (--api-key-file PATH or the {ENV_KEY} environment variable) or, to serve "
                         "it open to anyone who can reach it, --no-auth")
    return logging.WARNING, (f"no authentication (no API key): the service is open to every user and program on this "
                             f"machine that can reach {where}")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def bearer_token(scope: Scope) -> bytes | None:
    """The token of the request's ``Authorization: Bearer <token>`` header, if it has one."""
    value = _header(scope, b"authorization")
    if value is None:
        return None
    parts = value.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    return parts[1].strip()


def note(scope: Scope, **facts: Any) -> None:
    """Add ``facts`` (``images``: how many; ``error``: a failure's message) to the request's log line."""
    record = scope.get(RECORD)
    if isinstance(record, dict):
        record.update(facts)


class BearerAuth:
    """ASGI middleware: every HTTP or websocket request except ``open_paths`` needs
    ``Authorization: Bearer <key>``; others get 401 with ``WWW-Authenticate: Bearer``."""

    def __init__(self, app: ASGIApp, api_key: str, open_paths: tuple[str, ...] = OPEN_PATHS) -> None:
        self.app, self.open_paths = app, open_paths
        self._key = check_key(api_key, "api_key").encode("ascii")

    def allowed(self, scope: Scope) -> bool:
        """Whether the request carries the right key (compared in constant time)."""
        token = bearer_token(scope)
        return token is not None and hmac.compare_digest(token, self._key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self.open_paths or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        given = bearer_token(scope) is not None
        message = "wrong API key" if given else "missing API key: send the header 'Authorization: Bearer <API key>'"
        note(scope, error=message)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        challenge = b'Bearer realm="oodscope"' + (b', error="invalid_token"' if given else b"")
        body = json.dumps({"detail": message}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", challenge)]})
        await send({"type": "http.response.body", "body": body})


class AccessLog:
    """ASGI middleware: one line per HTTP request on the ``oodscope.serve`` logger (INFO; a 4xx
    answer WARNING and a 5xx ERROR, with the failure's message). The request's body is never read
    here; endpoints add what they know with :func:`note`."""

    def __init__(self, app: ASGIApp, logger: logging.Logger = LOG) -> None:
        self.app, self.logger = app, logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record: dict[str, Any] = {"images": None, "error": None}
        scope[RECORD] = record
        status = [500]
        start = time.perf_counter()

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException as e:
            status[0] = 500
            record["error"] = f"{type(e).__name__}: {e}" if isinstance(e, Exception) else "cancelled before an answer"
            raise
        finally:
            self._log(scope, status[0], record, (time.perf_counter() - start) * 1000)

    def _log(self, scope: Scope, status: int, record: dict[str, Any], ms: float) -> None:
        client = scope.get("client")
        who = f"{client[0]}:{client[1]}" if client else "-"
        images = "-" if record["images"] is None else str(record["images"])
        line = f"{scope.get('method', '-')} {scope.get('path', '-')} {status} images={images} {ms:.1f} ms client={who}"
        if status >= 400:
            error = " ".join(str(record["error"] or "(no message)").split())[:500]
            self.logger.log(logging.ERROR if status >= 500 else logging.WARNING, "%s: %s", line, error)
        else:
            self.logger.info("%s", line)
