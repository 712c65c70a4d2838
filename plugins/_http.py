"""What the remote plugins share: one httpx client per component, with a concurrency limit,
retries with backoff on 429 and 5xx (honouring Retry-After), timeouts and typed errors that say
which endpoint failed and why. Keys travel only in headers: never in URLs, errors or logs."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import Field, SecretStr

from prismrag.contracts import MissingDependencyError, Params, PrismError

T = TypeVar("T")
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class RemoteParams(Params):
    """Connection settings shared by the remote components."""

    url: str = Field(pattern=r"^https?://")
    """The service's base URL (e.g. http://localhost:8080/v1)."""
    api_key: SecretStr | None = None
    """Sent as 'Authorization: Bearer KEY'. Write `api_key: {$env: NAME}` in recipes."""
    timeout: float = Field(30.0, gt=0)
    """Seconds per request."""
    retries: int = Field(4, ge=0, le=20)
    """Retries after a 429, a 5xx, a timeout or a refused connection."""
    backoff: float = Field(0.5, ge=0)
    """First retry delay in seconds, doubled each time (with jitter) unless the server sends Retry-After."""
    max_backoff: float = Field(30.0, ge=0)
    """The longest wait between two tries, Retry-After included."""
    max_concurrency: int = Field(4, ge=1, le=256)
    """Requests in flight at once from this component."""


CONNECTION_PARAMS = frozenset({"api_key", "timeout", "retries", "backoff", "max_backoff", "max_concurrency"})
"""Params that never change results: kept out of fingerprints (and the key out of everything)."""


class RemoteError(PrismError):
    """A remote service failed; the message names the endpoint and the reason."""

    def __init__(self, endpoint: str, reason: str, status: int | None = None):
        self.endpoint, self.reason, self.status = endpoint, reason, status
        super().__init__(f"{endpoint}: {reason}")


class RemoteHTTPError(RemoteError):
    """The service answered with an error status."""


class RemoteUnavailable(RemoteError):
    """The service could not be reached, or did not answer in time."""


class RemoteResponseError(RemoteError):
    """The service answered 200 with a body we cannot use."""


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class HttpService:
    """A lazily opened httpx client for one component; thread-safe."""

    def __init__(self, params: RemoteParams, where: str, sleep: Callable[[float], None] = time.sleep):
        self.params, self.where, self._sleep = params, where, sleep
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(params.max_concurrency)

    def endpoint(self, path: str) -> str:
        base = self.params.url.rstrip("/")
        return f"{base}/{path.lstrip('/')}" if path else base

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import httpx
                except ImportError:
                    raise MissingDependencyError(self.where, "httpx", "remote") from None
                headers = {"User-Agent": "prismrag"}
                if self.params.api_key is not None:
                    headers["Authorization"] = f"Bearer {self.params.api_key.get_secret_value()}"
                limits = httpx.Limits(max_connections=self.params.max_concurrency,
                                      max_keepalive_connections=self.params.max_concurrency)
                self._client = httpx.Client(headers=headers, timeout=self.params.timeout, limits=limits)
            return self._client

    def map(self, fn: Callable[[T], Any], parts: Sequence[T]) -> list[Any]:
        """fn over parts, up to `max_concurrency` at once, results in order."""
        if len(parts) <= 1 or self.params.max_concurrency == 1:
            return [fn(p) for p in parts]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.params.max_concurrency, thread_name_prefix="prism-http")
            pool = self._pool
        return list(pool.map(fn, parts))

    def post(self, path: str, body: Any) -> Any:
        """POST JSON, retrying what a retry may fix; the parsed JSON answer."""
        import httpx

        url = self.endpoint(path)
        client = self.client()
        attempt = 0
        while True:
            wait: float | None = None
            try:
                with self._slots:
                    response = client.post(url, json=body)
            except httpx.TimeoutException:
                error: RemoteError = RemoteUnavailable(url, f"no answer within {self.params.timeout:g} s (timeout)")
            except httpx.TransportError as exc:
                error = RemoteUnavailable(url, f"cannot connect ({type(exc).__name__}: {exc})")
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise RemoteResponseError(url, "the answer is not JSON") from None
                error = RemoteHTTPError(url, f"HTTP {response.status_code}: {_detail(response)}", response.status_code)
                if response.status_code not in RETRY_STATUS:
                    raise error
                wait = retry_after(response.headers.get("retry-after"))
            if attempt >= self.params.retries:
                tries = f" (after {attempt + 1} tries)" if attempt else ""
                raise type(error)(error.endpoint, error.reason + tries, error.status)
            if wait is None:
                wait = self.params.backoff * (2 ** attempt) * (0.5 + random.random() / 2)
            self._sleep(min(wait, self.params.max_backoff))
            attempt += 1

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None


def _detail(response: Any) -> str:
    """The error a service gave, short (OpenAI/Cohere/TEI/prism shapes), else the body's start."""
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300] or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data.get("message", data.get("detail")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:300]
    return str(data)[:300]


def expect(condition: bool, url: str, what: str) -> None:
    if not condition:
        raise RemoteResponseError(url, what)
