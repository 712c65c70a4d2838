"""Benchmark: document encoding throughput of the ONNX backends against raw torch, in one run.

    .venv/bin/python scripts/bench/onnx_ingest.py ../shared/data/nfcorpus [--limit N] [--chunks 8] [--batch-size 32]

The same texts (the BEIR loader's items, as `prism ingest` sees them) and the same batch size go
through (1) raw `SentenceTransformer.encode` with torch, (2) the `sentence-transformers` encoder
with `backend: onnx` and (3) with `backend: onnx-int8`, all MiniLM (all-MiniLM-L6-v2). The corpus
is cut into chunks and every chunk is encoded by the three in rotating order, so load drift on a
shared machine hits them alike. Exports are made (or found in the cache) before any timing. Prints
docs/s per backend, the speed-ups, how close the vectors are to torch's, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit", type=int, default=None, help="only the first N documents")
    ap.add_argument("--chunks", type=int, default=8, help="interleaving slices of the corpus")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: its own)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import prismrag
    from prismrag.contracts import Context, Modality
    from prismrag.plugins.loaders import BeirLoader
    from prismrag.plugins.sentence_transformers_encoder import (
        SentenceTransformerEncoder,
        SentenceTransformerParams,
    )
    from prismrag.registry import Registry

    loader = BeirLoader(BeirLoader.Params(path=str(args.data)), Context())
    texts = [i.content for i in loader.load() if isinstance(i, prismrag.Item)][: args.limit]
    ctx = Context(resolve_model=Registry().resolve_model)

    def make(backend: str) -> SentenceTransformerEncoder:
        params = SentenceTransformerParams(model="sentence-transformers/all-MiniLM-L6-v2", backend=backend,
                                           batch_size=args.batch_size, threads=args.threads, device="cpu")
        return SentenceTransformerEncoder(params, ctx)

    torch_model = make("torch").model
    onnx, int8 = make("onnx"), make("onnx-int8")
    started = time.perf_counter()
    onnx.model, int8.model  # noqa: B018 - export (or find) before timing
    print(f"{len(texts)} documents; ONNX exports ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    runners = {
        "torch": lambda part: torch_model.encode(part, batch_size=args.batch_size, convert_to_numpy=True,
                                                  normalize_embeddings=True, show_progress_bar=False),
        "onnx": lambda part: onnx.encode_batch(part, Modality.TEXT, "document"),
        "onnx-int8": lambda part: int8.encode_batch(part, Modality.TEXT, "document"),
    }
    for run in runners.values():
        run(texts[:64])  # warm-up: thread pools, allocator arenas
    load_before = os.getloadavg()
    seconds = dict.fromkeys(runners, 0.0)
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    bounds = np.linspace(0, len(texts), args.chunks + 1).astype(int)
    names = list(runners)
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        for name in names[c % 3:] + names[: c % 3]:  # rotate who goes first
            t = time.perf_counter()
            vectors[name].append(np.asarray(runners[name](texts[lo:hi]), dtype=np.float32))
            seconds[name] += time.perf_counter() - t
        print(f"chunk {c + 1}/{args.chunks}: " + ", ".join(f"{n} {seconds[n]:.0f} s" for n in names), file=sys.stderr)
    load_after = os.getloadavg()

    ref = np.concatenate(vectors["torch"])
    result: dict[str, object] = {"documents": len(texts), "batch_size": args.batch_size, "cpus": os.cpu_count(),
                                 "loadavg_before": [round(x, 2) for x in load_before],
                                 "loadavg_after": [round(x, 2) for x in load_after]}
    for name in names:
        got = np.concatenate(vectors[name])
        cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
        result[name] = {"seconds": round(seconds[name], 1), "docs_per_s": round(len(texts) / seconds[name], 1),
                        "speedup_vs_torch": round(seconds["torch"] / seconds[name], 2),
                        "cosine_vs_torch_mean": round(float(cos.mean()), 6), "cosine_vs_torch_min": round(float(cos.min()), 6)}
        print(f"{name:10s} {len(texts) / seconds[name]:7.1f} docs/s  x{seconds['torch'] / seconds[name]:.2f} vs torch  "
              f"cosine vs torch mean {cos.mean():.6f} min {cos.min():.6f}")
    print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} cpus)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
