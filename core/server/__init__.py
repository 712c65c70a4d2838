"""`prism serve`: recipes over HTTP (FastAPI on uvicorn, the `serve` extra).

- `command`: the `prism serve` subcommand (light: imported for `prism --help`);
- `app`: the FastAPI application over one engine per recipe;
- `security`: API keys, body limits, the bind check;
- `batching`: dynamic micro-batching of concurrent query encodes;
- `metrics`: Prometheus counters and histograms;
- `client`: `prism search --server URL`, on the standard library alone;
- `remote_engine`: a served recipe behind `Engine`'s search API, on httpx (`prism tui --server`).
"""
