"""MUVERA first stage + exact MaxSim rescoring against exact MaxSim over every document.

    python scripts/bench/muvera.py [--docs 100000] [--tokens 30] [--dim 64] [--queries 30]
        [--reps 10] [--bits 4] [--proj 8] [--candidates 100,200,500,1000,2000]

Synthetic multi-vectors: 1,000 topic centroids; each document draws ~`tokens` unit vectors
around three topics; each query takes 32 vectors near one document's tokens and topics. Both
ways run in numpy on one process (the same BLAS for both): exact MaxSim scores every document's
token vectors; MUVERA encodes the query (prismrag.plugins._muvera), ranks the document encodings
by inner product, and rescores the best `candidates` by exact MaxSim. Prints, per candidate
count, recall@10 against the exact top 10 and the p50 latency of each way.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from prismrag.plugins._muvera import Fde, FdeConfig

QUERY_TOKENS = 32


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic(args: argparse.Namespace, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Token matrix [T, d] with document offsets [n + 1], and the query sets."""
    centroids = unit(rng.normal(size=(1000, args.dim)))
    lengths = rng.integers(args.tokens - 10, args.tokens + 11, size=args.docs)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    topics = rng.integers(0, len(centroids), size=(args.docs, 3))
    which = topics[np.repeat(np.arange(args.docs), lengths), rng.integers(0, 3, size=int(offsets[-1]))]
    tokens = np.empty((int(offsets[-1]), args.dim), np.float32)
    for lo in range(0, len(tokens), 1_000_000):
        hi = min(lo + 1_000_000, len(tokens))
        tokens[lo:hi] = unit(centroids[which[lo:hi]] + rng.normal(scale=0.6 / np.sqrt(args.dim), size=(hi - lo, args.dim)))
    queries = []
    for d in rng.integers(0, args.docs, size=args.queries):
        own = tokens[offsets[d] : offsets[d + 1]]
        near = own[rng.integers(0, len(own), QUERY_TOKENS // 2)] + rng.normal(scale=0.3 / np.sqrt(args.dim), size=(QUERY_TOKENS // 2, args.dim))
        topic = centroids[topics[d, rng.integers(0, 3, QUERY_TOKENS // 2)]] + rng.normal(scale=0.6 / np.sqrt(args.dim), size=(QUERY_TOKENS // 2, args.dim))
        queries.append(unit(np.concatenate([near, topic])))
    return tokens, offsets, queries


def padded(tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """[n, longest, d]: each document's vectors, padded with copies of its first (MaxSim unchanged)."""
    lengths = np.diff(offsets)
    idx = offsets[:-1, None] + np.arange(lengths.max())[None, :]
    idx = np.where(np.arange(lengths.max())[None, :] < lengths[:, None], idx, offsets[:-1, None])
    return tokens[idx]


def maxsim(docs: np.ndarray, q: np.ndarray, chunk_docs: int = 10_000) -> np.ndarray:
    """Exact MaxSim of one query [m, d] against padded documents [n, L, d]."""
    n, length, dim = docs.shape
    qt = np.ascontiguousarray(q.T)
    out = np.empty(n, np.float32)
    for a in range(0, n, chunk_docs):
        b = min(a + chunk_docs, n)
        out[a:b] = (docs[a:b].reshape(-1, dim) @ qt).reshape(b - a, length, -1).max(axis=1).sum(axis=1)
    return out


def top(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--tokens", type=int, default=30)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--proj", type=int, default=8)
    ap.add_argument("--final", type=int, default=None, help="count-sketch the FDE to this many dimensions")
    ap.add_argument("--candidates", default="100,200,500,1000,2000")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    t = time.perf_counter()
    tokens, offsets, queries = synthetic(args, rng)
    print(f"{args.docs} documents, {len(tokens)} token vectors of {args.dim} dims ({tokens.nbytes / 2**20:.0f} MiB), "
          f"{len(queries)} queries of {QUERY_TOKENS} tokens; made in {time.perf_counter() - t:.1f} s")
    fde = Fde(FdeConfig(args.dim, args.reps, args.bits, args.proj, args.final, seed=args.seed))
    t = time.perf_counter()
    sets = [tokens[offsets[i] : offsets[i + 1]] for i in range(args.docs)]
    encoded = fde.documents(sets)
    docs = padded(tokens, offsets)
    del sets, tokens
    print(f"FDE: {args.reps} repetitions x {fde.config.parts} parts x {fde.config.block} = {encoded.shape[1]} dims "
          f"({encoded.nbytes / 2**20:.0f} MiB); documents encoded in {time.perf_counter() - t:.1f} s")

    exact_ms, truth = [], []
    for q in queries:
        t = time.perf_counter()
        scores = maxsim(docs, q)
        best = top(scores, 10)
        exact_ms.append(1000 * (time.perf_counter() - t))
        truth.append(set(best.tolist()))
    exact_p50 = statistics.median(exact_ms)
    print(f"exact MaxSim over all documents: p50 {exact_p50:.1f} ms")
    print(f"{'candidates':>10} {'recall@10':>10} {'p50 ms':>8} {'speed-up':>9}   (first stage recall@10 of its candidates)")
    for c in [int(x) for x in args.candidates.split(",")]:
        recalls, first, ms = [], [], []
        for q, want in zip(queries, truth, strict=True):
            t = time.perf_counter()
            cand = top(encoded @ fde.queries([q])[0], c)
            rescored = maxsim(docs[cand], q)
            got = cand[top(rescored, 10)]
            ms.append(1000 * (time.perf_counter() - t))
            recalls.append(len(want & set(got.tolist())) / 10)
            first.append(len(want & set(cand.tolist())) / 10)
        p50 = statistics.median(ms)
        print(f"{c:>10} {statistics.fmean(recalls):>10.3f} {p50:>8.1f} {exact_p50 / p50:>8.1f}x   ({statistics.fmean(first):.3f})")


if __name__ == "__main__":
    main()
