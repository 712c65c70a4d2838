"""MUVERA fixed-dimensional encodings on random sets: the inner product of a query encoding and a
document encoding is the sum, over query vectors and repetitions, of the query vector's inner
product with the document's mean vector in its SimHash part (nearest part's vector when empty),
and approximates the Chamfer (MaxSim) similarity the paper's theorem bounds."""

from __future__ import annotations

import numpy as np
import pytest

from prismrag.plugins._muvera import Fde, FdeConfig

D = 24


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def chamfer(q: np.ndarray, p: np.ndarray) -> float:
    return float((q @ p.T).max(axis=1).sum())


def reference_inner_product(fde: Fde, q: np.ndarray, p: np.ndarray) -> float:
    """The paper's definition, one repetition and one query vector at a time (no projection)."""
    c, total = fde.config, 0.0
    powers = 1 << np.arange(c.simhash_bits)
    for r in range(c.repetitions):
        q_parts = ((q @ fde.planes[r]) > 0).astype(int) @ powers
        p_parts = ((p @ fde.planes[r]) > 0).astype(int) @ powers
        for vec, k in zip(q, q_parts, strict=True):
            members = p[p_parts == k]
            if len(members):
                total += float(vec @ members.mean(axis=0))
            else:  # the document vector whose part is nearest in Hamming distance
                ham = [bin(int(k) ^ int(j)).count("1") for j in p_parts]
                total += float(vec @ p[int(np.argmin(ham))])
    return total


def random_sets(rng: np.random.Generator, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    return [unit(rng.normal(size=(int(rng.integers(*size)), D))) for _ in range(n)]


def test_the_encodings_inner_product_is_the_papers_partitioned_sum():
    rng = np.random.default_rng(0)
    fde = Fde(FdeConfig(D, repetitions=3, simhash_bits=3, seed=4))
    queries, docs = random_sets(rng, 4, (2, 9)), random_sets(rng, 6, (1, 12))
    got = fde.queries(queries) @ fde.documents(docs).T
    want = np.array([[reference_inner_product(fde, q, p) for p in docs] for q in queries])
    assert fde.documents(docs).shape == (6, 3 * 8 * D)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # asymmetric: the query side sums, the document side averages
    assert not np.allclose(fde.queries(docs[:1]), fde.documents(docs[:1]))


def test_the_inner_product_approximates_chamfer_better_with_more_partitions():
    rng = np.random.default_rng(1)
    q = unit(rng.normal(size=(8, D)))
    # documents holding noisy copies of some query vectors among unrelated ones: Chamfer spreads
    docs = [unit(np.concatenate([q[rng.choice(8, 4)] + rng.normal(scale=s, size=(4, D)), rng.normal(size=(12, D))]))
            for s in np.linspace(0.05, 1.5, 60)]
    truth = np.array([chamfer(q, p) for p in docs])

    def correlation(bits: int) -> float:
        fde = Fde(FdeConfig(D, repetitions=30, simhash_bits=bits, seed=2))
        estimate = fde.documents(docs) @ fde.queries([q])[0] / 30
        return float(np.corrcoef(estimate, truth)[0, 1])

    coarse, fine = correlation(0), correlation(4)
    assert fine > 0.8 and fine > coarse + 0.1
    # the best document by Chamfer is among the FDE's best five
    fde = Fde(FdeConfig(D, repetitions=30, simhash_bits=4, seed=2))
    order = np.argsort(-(fde.documents(docs) @ fde.queries([q])[0]))
    assert int(np.argmax(truth)) in order[:5].tolist()


def test_projections_keep_inner_products_in_expectation():
    rng = np.random.default_rng(3)
    queries, docs = random_sets(rng, 3, (3, 8)), random_sets(rng, 5, (3, 10))
    plain = Fde(FdeConfig(D, repetitions=4, simhash_bits=2, seed=9))
    exact = plain.queries(queries) @ plain.documents(docs).T
    # the same seed draws the same hyperplanes first: only the projections differ
    projected = Fde(FdeConfig(D, repetitions=4, simhash_bits=2, projection=512, seed=9))
    assert np.array_equal(projected.planes, plain.planes)
    approx = projected.queries(queries) @ projected.documents(docs).T
    assert np.abs(approx - exact).max() < 0.15 * np.abs(exact).max()
    sketched = Fde(FdeConfig(D, repetitions=4, simhash_bits=2, final_dimension=4096, seed=9))
    assert sketched.documents(docs).shape == (5, 4096)
    est = sketched.queries(queries) @ sketched.documents(docs).T
    assert np.abs(est - exact).max() < 0.3 * np.abs(exact).max()


def test_bad_sets_are_refused():
    fde = Fde(FdeConfig(D, repetitions=1, simhash_bits=1))
    with pytest.raises(ValueError, match="at least one vector"):
        fde.documents([np.zeros((0, D), np.float32)])
    with pytest.raises(ValueError, match="shape"):
        fde.queries([np.zeros((3, D + 1), np.float32)])
