"""Load test of `prism serve`: N concurrent clients for S seconds of mixed search (90%) and
ingest (10%) on a 10k-item index: with micro-batching of searches (a batch's queries in one
encoder call and one store call), with one query at a time through the same worker, and with no
batching at all (see --modes).

Loopback only. For each mode it starts a real `prism serve` on a temporary copy of the index,
ingests the corpus (NFCorpus passages from shared/data, 64-word windows, the first --docs), runs
the clients (httpx, one keep-alive connection each), then checks that every acknowledged ingest
is in the index (count = docs + ingested). Reports errors, p50/p99 latency, queries/s and the
CPU seconds of server and clients per mode, and the first mode's queries/s against each other's.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench/serve_load.py                 # MiniLM, 100 clients, 60 s
    .venv/bin/python scripts/bench/serve_load.py --encoder hash --seconds 10       # no model (needs tests/ on the path)
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench/serve_load.py --encoder minilm-onnx  # MiniLM on onnxruntime
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "data" / "nfcorpus"
ENCODERS = {
    "minilm": "{use: sentence-transformers, model: sentence-transformers/all-MiniLM-L6-v2}",
    "minilm-onnx": "{use: sentence-transformers, model: sentence-transformers/all-MiniLM-L6-v2, backend: onnx}",
    "hash": "{use: hash, dimension: 256}",
}


def passages(limit: int) -> list[tuple[str, str]]:
    """(id, text) of 64-word windows of the NFCorpus documents, `limit` of them."""
    out: list[tuple[str, str]] = []
    with (CORPUS / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            words = doc["text"].split()
            for k in range(0, max(1, len(words)), 64):
                out.append((f"{doc['_id']}#{k // 64}", " ".join(words[k : k + 64])))
                if len(out) == limit:
                    return out
    while len(out) < limit:  # a corpus short of windows: repeat with new ids
        i, text = len(out), out[len(out) % max(1, len(out))][1]
        out.append((f"rep{i}", text))
    return out


def queries() -> list[str]:
    with (CORPUS / "queries.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(recipe: Path, mode: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """`prism serve` with `mode` = "WAIT_MS" or "WAIT_MS:MAX_BATCH" (micro-batching settings)."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prism"), "serve", str(recipe), "--port", str(port),
                             "--batch-wait-ms", mode.split(":")[0], "--max-batch", (mode.split(":") + ["64"])[1],
                             "--threads", "128", "--timeout", "120"],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"prism serve exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("prism serve did not get ready in 300 s")


async def run_load(base: str, clients: int, seconds: float, ingest_ratio: float, qs: list[str],
                   pool: list[tuple[str, str]], tag: str) -> dict:
    import httpx

    lat: dict[str, list[float]] = {"search": [], "ingest": []}
    errors: list[str] = []
    ingested: list[str] = []
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client(n: int) -> None:
        rng = random.Random(n)
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                if rng.random() < ingest_ratio:
                    k = next(counter)
                    item_id, text = f"load-{tag}-{k}", pool[k % len(pool)][1]
                    kind = "ingest"
                    r = await http.post("/v1/recipes/load/items", json={"items": [{"id": item_id, "text": text}]})
                    if r.status_code == 200:
                        ingested.append(item_id)
                else:
                    kind = "search"
                    r = await http.post("/v1/recipes/load/search", json={"query": rng.choice(qs), "top_k": 10})
                if r.status_code != 200:
                    errors.append(f"{kind}: {r.status_code} {r.text[:200]}")
                else:
                    lat[kind].append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.perf_counter() - t0
    search = sorted(lat["search"])

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else float("nan")

    return {
        "searches": len(search), "ingests": len(lat["ingest"]), "errors": len(errors), "error_sample": errors[:5],
        "queries_per_s": round(len(search) / wall, 1),
        "search_p50_ms": round(pct(search, 0.5), 1), "search_p99_ms": round(pct(search, 0.99), 1),
        "search_mean_ms": round(statistics.fmean(search) * 1000, 1) if search else None,
        "ingest_p50_ms": round(pct(sorted(lat["ingest"]), 0.5), 1), "ingested_ids": ingested, "wall_s": round(wall, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", choices=sorted(ENCODERS), default="minilm")
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--ingest-ratio", type=float, default=0.1)
    ap.add_argument("--modes", default="2,2:1,0",
                    help="modes to compare, each --batch-wait-ms[:--max-batch] (the first against each other). "
                         "Default: micro-batching (2 ms, up to 64 queries a batch); one query at a time through "
                         "the same worker (2:1); no batching of searches or ingests at all (0: each request "
                         "searches on its own thread, at once)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--cache-dir", type=Path, help="keep the embedding cache here (a rerun skips encoding the corpus)")
    args = ap.parse_args()

    import httpx

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH")])))
    work = Path(tempfile.mkdtemp(prefix="prism-load-"))
    if args.encoder == "hash":  # the test encoder, installed as a plugin the way tests/server_helpers does
        sys.path.insert(0, str(ROOT / "tests"))
        from server_helpers import plugin_site

        env["PYTHONPATH"] = os.pathsep.join([str(plugin_site(work)), str(ROOT / "tests")])
    env["PRISMRAG_CACHE_DIR"] = str(args.cache_dir or work / "cache")
    recipe = work / "load.yaml"
    recipe.write_text(f"name: load\nstore: {{use: qdrant-edge, path: {work / 'store'}}}\n"
                      f"retrievers:\n  dense: {{encoder: {ENCODERS[args.encoder]}}}\n")
    corpus = passages(args.docs)
    qs = queries()
    results = {"encoder": args.encoder, "docs": args.docs, "clients": args.clients, "seconds": args.seconds,
               "ingest_ratio": args.ingest_ratio,
               "cpus": os.cpu_count(), "modes": {}}
    try:
        for mode in args.modes.split(","):
            store = work / "store"
            shutil.rmtree(store, ignore_errors=True)  # each mode starts from the same 10k index
            proc, base = start(recipe, mode, env, work / f"serve-{mode.replace(':', '-')}.log")
            try:
                t = time.perf_counter()
                for start_at in range(0, len(corpus), 1000):
                    batch = [{"id": i, "text": x} for i, x in corpus[start_at : start_at + 1000]]
                    r = httpx.post(base + "/v1/recipes/load/items", json={"items": batch}, timeout=3600)
                    r.raise_for_status()
                ingest_s = time.perf_counter() - t
                before = httpx.get(base + "/v1/recipes/load/count", timeout=120).json()["count"]
                cpu = _cpu_seconds(proc.pid), time.process_time()
                out = asyncio.run(run_load(base, args.clients, args.seconds, args.ingest_ratio, qs, corpus,
                                           f"w{mode.replace(':', '-')}"))
                out.update(server_cpu_s=round(_cpu_seconds(proc.pid) - cpu[0], 1),
                           client_cpu_s=round(time.process_time() - cpu[1], 1))
                after = httpx.get(base + "/v1/recipes/load/count", timeout=120).json()["count"]
                ids = out.pop("ingested_ids")
                out.update(index_before=before, index_after=after, lost_items=before + len(set(ids)) - after,
                           corpus_ingest_s=round(ingest_s, 1))
                metrics = httpx.get(base + "/metrics", timeout=30).text
                out["batches"] = _metric(metrics, "prism_search_batch_queries_count")
                out["stage_mean_ms"] = _stage_means(metrics)
                results["modes"][mode] = out
                print(f"mode {mode}: {json.dumps(out)}", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
        first, *others = results["modes"].items()
        results["speedup"] = {f"{first[0]} vs {name}": round(first[1]["queries_per_s"] / m["queries_per_s"], 2)
                              for name, m in others if m["queries_per_s"]}
        print(json.dumps(results, indent=2))
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stage_means(text: str) -> dict[str, float]:
    """Mean seconds per search stage (encode, search, fusion, payload) from the server's metrics, in ms."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        for suffix, into in (("_sum{", sums), ("_count{", counts)):
            if line.startswith("prism_search_stage_seconds" + suffix):
                stage = line.split('stage="', 1)[1].split('"', 1)[0]
                into[stage] = float(line.rsplit(" ", 1)[1])
    return {k: round(1000 * sums[k] / counts[k], 2) for k in sums if counts.get(k)}


def _metric(text: str, name: str) -> float | None:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values) if values else None


if __name__ == "__main__":
    sys.exit(main())
