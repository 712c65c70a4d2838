"""Concurrent ingest requests against a real `prism serve`: merged into shared engine runs, each
request answered with its own items' report, nothing lost, conflicting requests kept apart."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from server_helpers import call, hash_recipe, serve


def _post(base: str, items: list[dict]) -> tuple[int, dict]:
    return call(f"{base}/v1/recipes/docs/items", {"items": items})


def _merged_runs(base: str) -> tuple[float, float]:
    """(requests merged, engine runs) from the server's ingest batch histogram."""
    status, text = call(f"{base}/metrics")
    assert status == 200
    found = dict(re.findall(r'prism_ingest_batch_requests_(sum|count)\{recipe="docs"\} (\S+)', text))
    return float(found.get("sum", 0)), float(found.get("count", 0))


def test_concurrent_ingests_share_runs_and_each_gets_its_own_report(tmp_path: Path):
    recipe = hash_recipe(tmp_path)
    with serve([recipe], tmp_path, "--batch-wait-ms", "300") as base:
        requests = [[{"id": f"doc{n}", "text": f"document number {n} about apples"}] for n in range(24)]
        requests.append([{"id": "mixed-ok", "text": "a fine item"},
                         {"id": "mixed-bad", "text": "reserved key", "metadata": {"_hash": "x"}}])
        requests.append([{"id": "only-bad", "text": "reserved key", "metadata": {"_owner": "x"}}])
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(lambda items: _post(base, items), requests))

        for status, body in answers[:24]:
            assert status == 200, body
            assert (body["loaded"], body["added"], body["updated"], body["unchanged"], body["errors"]) == (1, 1, 0, 0, [])
        status, body = answers[24]
        assert status == 200 and (body["loaded"], body["added"]) == (1, 1)
        assert len(body["errors"]) == 1 and "mixed-bad" in body["errors"][0] and "reserved" in body["errors"][0]
        status, body = answers[25]
        assert status == 400, body  # as a run of its own answers
        assert "only-bad" in body["error"]["message"] and "reserved" in body["error"]["message"]

        merged, runs = _merged_runs(base)
        assert merged == 26 and runs < 26, (merged, runs)  # requests shared runs
        assert call(f"{base}/v1/recipes/docs/count")[1]["count"] == 25

        # the same items again: each request hears "unchanged" for its own item only
        with ThreadPoolExecutor(8) as pool:
            again = list(pool.map(lambda items: _post(base, items), requests[:8]))
        assert all(s == 200 and (b["unchanged"], b["added"], b["loaded"]) == (1, 0, 1) for s, b in again), again


def test_requests_naming_the_same_id_run_apart_and_both_land(tmp_path: Path):
    recipe = hash_recipe(tmp_path)
    with serve([recipe], tmp_path, "--batch-wait-ms", "300") as base:
        texts = [f"version {n} of the shared document" for n in range(4)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda t: _post(base, [{"id": "shared", "text": t}]), texts))
        assert all(s == 200 and b["loaded"] == 1 for s, b in answers), answers
        assert sorted(b["added"] for _, b in answers) == [0, 0, 0, 1]  # one added it, the others updated it
        assert sum(b["updated"] for _, b in answers) == 3
        _, runs = _merged_runs(base)
        assert runs == 4  # never two versions of one id in one run
        status, got = call(f"{base}/v1/recipes/docs/items/shared")
        assert status == 200 and got["payload"]["text"] in texts


def test_without_micro_batching_each_request_is_its_own_run(tmp_path: Path):
    recipe = hash_recipe(tmp_path)
    with serve([recipe], tmp_path, "--batch-wait-ms", "0") as base:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda n: _post(base, [{"id": f"d{n}", "text": f"text {n}"}]), range(6)))
        assert all(s == 200 and b["added"] == 1 for s, b in answers), answers
        assert _merged_runs(base) == (0.0, 0.0)
        assert call(f"{base}/v1/recipes/docs/count")[1]["count"] == 6
