"""`prism search --server URL` (or $PRISM_SERVER): the CLI as a client of `prism serve`, with
the CLI's own output. Standard library only, so a call costs no model and no heavy import."""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from ..errors import PrismError

SERVER_ENV = "PRISM_SERVER"
KEY_ENV = "PRISM_API_KEY"


class Client:
    def __init__(self, base: str, key: str | None = None, timeout: float = 60.0):
        self.base, self.key, self.timeout = base.rstrip("/"), key, timeout

    def request(self, path: str, data: bytes | None = None, content_type: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise PrismError(_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrismError(f"cannot reach prism serve at {self.base}: {reason}") from None

    def post_json(self, path: str, body: Any) -> Any:
        return self.request(path, json.dumps(body).encode(), "application/json")

    def post_form(self, path: str, fields: list[tuple[str, str]], file: Path) -> Any:
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields]
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file.name}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n".encode() + file.read_bytes() + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request(path, b"".join(parts), f"multipart/form-data; boundary={boundary}")

    def recipe_name(self, given: str) -> str:
        """A served recipe's name from a name, or from the path of the file the server loaded."""
        path = Path(given)
        if not path.is_file():
            return given
        served = self.request("/v1/recipes")
        for recipe in served:
            if Path(recipe["source"]).resolve() == path.resolve():
                return recipe["name"]
        names = ", ".join(f"{r['name']} ({r['source']})" for r in served)
        raise PrismError(f"{self.base} does not serve the recipe file {given}; it serves: {names}")


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"prism serve answered HTTP {exc.code} {exc.reason}"


def search_remote(server: str, args: argparse.Namespace) -> int:
    """Run `prism search` against a server; prints exactly what the local command prints."""
    from ..cli import _snippet, parse_weights

    client = Client(server, os.environ.get(KEY_ENV))
    name = client.recipe_name(args.recipe)
    weights = parse_weights(getattr(args, "weights", None) or [])
    query = Path(args.query)
    is_file = args.modality != "text" and len(args.query) < 4096 and "\n" not in args.query and query.is_file()
    if is_file:
        fields = [("explain", "true" if args.explain else "false")]
        fields += [("top_k", str(args.top_k))] if args.top_k is not None else []
        fields += [("modality", args.modality)] if args.modality else []
        fields += [("weights", json.dumps(weights))] if weights else []
        fields += [("filters", f) for f in args.filter or []]
        result = client.post_form(f"/v1/recipes/{name}/search/upload", fields, query)
    else:
        body = {"query": args.query, "top_k": args.top_k, "filters": args.filter or [], "weights": weights,
                "explain": bool(args.explain)}
        result = client.post_json(f"/v1/recipes/{name}/search", body)
    hits = result["hits"]
    if args.json:
        print(json.dumps(hits, indent=2, default=str))
        return 0
    if not hits:
        print("no results")
    for i, hit in enumerate(hits):
        print(f"{hit['rank']:>3}. {hit['score']:9.4f}  {hit['id']}  [{hit['modality']}]")
        print(f"      {_snippet(dict(hit['payload']))}")
        if args.explain:
            for line in result["explanations"][i]:
                print(f"      {line}")
    if args.explain:
        timings = result["timings"]
        stages = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in timings.items())
        print(f"\n{sum(timings.values()) * 1000:.1f} ms: {stages}")
    sys.stdout.flush()
    return 0
