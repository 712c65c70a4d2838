"""The embedding cache: rows come back as stored, also when several threads share one cache."""

from __future__ import annotations

import threading

import numpy as np

from prismrag.cache import EmbeddingCache
from prismrag.types import MultiBatch, SparseBatch


def test_rows_of_every_kind_round_trip(tmp_path):
    cache = EmbeddingCache(tmp_path)
    dense = np.arange(6, dtype=np.float32).reshape(2, 3)
    sparse = SparseBatch.from_rows([(np.array([3, 9]), np.array([0.5, 1.5], np.float32)), (np.array([], np.int64), np.array([], np.float32))])
    multi = MultiBatch([np.ones((2, 4), np.float32), np.zeros((1, 4), np.float32)])
    cache.put("d", ["a", "b"], dense)
    cache.put("s", ["a", "b"], sparse)
    cache.put("m", ["a", "b"], multi)
    got = cache.get("d", ["b", "x", "a"], "dense")
    assert set(got) == {0, 2} and np.array_equal(got[0], dense[1]) and np.array_equal(got[2], dense[0])
    idx, val = cache.get("s", ["a"], "sparse")[0]
    assert idx.tolist() == [3, 9] and val.tolist() == [0.5, 1.5]
    assert cache.get("s", ["b"], "sparse")[0][0].size == 0
    assert cache.get("m", ["a", "b"], "multi")[1].shape == (1, 4)
    assert cache.get("other-fingerprint", ["a"], "dense") == {}
    cache.close()


def test_threads_sharing_one_cache_neither_fail_nor_lose_rows(tmp_path):
    cache = EmbeddingCache(tmp_path)
    problems: list[str] = []

    def work(t: int) -> None:
        rng = np.random.default_rng(t)
        try:
            for i in range(150):
                hashes = [f"{t}-{i}-{j}" for j in range(20)]
                rows = rng.normal(size=(20, 8)).astype(np.float32)
                cache.put(f"fp{t % 2}", hashes, rows)
                got = cache.get(f"fp{t % 2}", hashes, "dense")
                if len(got) != 20 or not np.array_equal(got[7], rows[7]):
                    problems.append(f"thread {t} round {i}: {len(got)} of 20 rows")
        except Exception as exc:  # sqlite errors from concurrent use of one connection
            problems.append(f"thread {t}: {exc!r}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert problems == []
    cache.close()
