"""What keeps the server safe to expose: the bind check, API keys compared in constant time, a
request body limit, and media paths confined to allowed folders."""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import PrismError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths answered without a key (they tell nothing but whether the server is up and loaded)."""


class ServerError(PrismError):
    """A request the server refuses; `status` is its HTTP status code."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, allow_no_key: bool) -> None:
    """Refuse to serve a non-loopback interface without a key, unless explicitly allowed."""
    if not api_key and not allow_no_key and not is_loopback(host):
        raise PrismError(
            f"refusing to serve {host} without an API key: set PRISM_API_KEY (or --api-key), bind "
            f"127.0.0.1, or pass --allow-no-key to let anyone who reaches {host} use the server"
        )


def key_matches(expected: str, authorization: str | None, x_api_key: str | None) -> bool:
    """Whether the request carries the key ('Authorization: Bearer KEY' or 'X-API-Key: KEY'),
    compared in constant time."""
    given = x_api_key or ""
    if authorization and authorization[:7].lower() == "bearer ":
        given = authorization[7:].strip()
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def error_body(status: int, kind: str, message: str) -> bytes:
    return json.dumps({"error": {"status": status, "type": kind, "message": message}}).encode()


async def send_json_error(send: Send, status: int, kind: str, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = error_body(status, kind, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """API key check and body size limit in front of the application (pure ASGI, so an
    oversize body is refused before it is read whole and a keyless request before any work)."""

    def __init__(self, app: ASGIApp, api_key: str | None, max_body: int):
        self.app, self.api_key, self.max_body = app, api_key, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        public = scope.get("method") == "OPTIONS" or scope["path"] in PUBLIC_PATHS
        if self.api_key and not public and not key_matches(
            self.api_key, headers.get("authorization"), headers.get("x-api-key")
        ):
            given = "authorization" in headers or "x-api-key" in headers
            await send_json_error(send, 401, "Unauthorized",
                                  "wrong API key" if given else "missing API key: send 'Authorization: Bearer KEY'",
                                  [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                await send_json_error(send, 413, "PayloadTooLarge", self._too_large())
                return
            await self.app(scope, receive, send)
            return
        # A body of unknown length (chunked): read it up to the limit, then hand it on.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await send_json_error(send, 413, "PayloadTooLarge", self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _too_large(self) -> str:
        return f"request body over the server's limit of {self.max_body:,} bytes (prism serve --max-body-mb)"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then whatever the connection says (a disconnect)."""
    given = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def media_path(value: str, roots: Sequence[Path]) -> Path:
    """A media query file named by path: allowed only inside one of `roots` (after resolving
    links and `..`); anything else is refused without telling whether it exists."""
    if not roots:
        raise ServerError(403, "this server reads no media by path (start it with --media-root DIR); upload the file instead")
    try:
        path = Path(value).expanduser()
        candidates = [path.resolve()] if path.is_absolute() else [(root / path).resolve() for root in roots]
    except (OSError, RuntimeError, ValueError):
        raise ServerError(400, f"invalid media path {value!r}") from None
    for candidate in candidates:
        if any(candidate.is_relative_to(root) for root in roots):
            if not candidate.is_file():
                raise ServerError(404, f"media file {value!r} does not exist under the allowed roots")
            return candidate
    raise ServerError(403, f"media path {value!r} is outside the allowed roots")
