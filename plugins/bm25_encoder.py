"""The `bm25` encoder: stateless BM25 term weights as sparse vectors, offline and model-free.

Documents get the BM25 term-frequency part of each term's weight,

    tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avg_len))

where tf counts the term in the document and dl is the document's length in tokens (after stop
words are removed). Queries get 1.0 per distinct term. The inverse document frequency needs
corpus statistics, so it is left to the index (`sparse_idf = True` asks the sparse index to
apply IDF, which Qdrant computes), as in Qdrant's and FastEmbed's BM25. Because the encoder keeps
no corpus state, `avg_len` is a constant rather than the corpus's mean length: the same choice
FastEmbed makes (256 by default); set it near your chunks' typical token count.

Term ids are a stable 32-bit hash (CRC-32) of the processed token, so no vocabulary is stored and
ids never change between runs or machines.
"""

from __future__ import annotations

import itertools
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from prismrag import Encoder, Modality, Params, hookimpl
from prismrag.contracts import Content, Context, PrismError, Role, SparseBatch, as_text
from prismrag.support import import_optional

ENGLISH_STOP_WORDS = frozenset(
    """
    a about above after again against ain all am an and any are aren aren't as at be because been
    before being below between both but by can couldn couldn't d did didn didn't do does doesn
    doesn't doing don don't down during each few for from further had hadn hadn't has hasn hasn't
    have haven haven't having he her here hers herself him himself his how i if in into is isn
    isn't it it's its itself just ll m ma me mightn mightn't more most mustn mustn't my myself
    needn needn't no nor not now o of off on once only or other our ours ourselves out over own re
    s same shan shan't she she's should should've shouldn shouldn't so some such t than that
    that'll the their theirs them themselves then there these they this those through to too under
    until up ve very was wasn wasn't we were weren weren't what when where which while who whom why
    will with won won't wouldn wouldn't y you you'd you'll you're you've your yours yourself
    yourselves
    """.split()  # noqa: SIM905 - a word list reads better as text
)
"""English stop words (the NLTK list, as FastEmbed's BM25 uses); dropped before stemming."""

_TOKEN = re.compile(r"[^\W_]+")
"""Runs of letters and digits (any script); punctuation, spaces and underscores separate tokens."""


class BM25Params(Params):
    language: str = "english"
    """The Snowball stemmer language (PyStemmer's names: english, german, french, …)."""
    stemmer: bool = True
    stopwords: bool | list[str] = True
    """True: the built-in English list (English only); False: none; or a list of your own."""
    lowercase: bool = True
    k1: float = Field(default=1.2, ge=0)
    b: float = Field(default=0.75, ge=0, le=1)
    avg_len: float = Field(default=256.0, gt=0)
    """The length (in tokens) that document lengths are normalised against (see the module doc)."""
    min_token_len: int = Field(default=1, ge=1)
    max_token_len: int = Field(default=40, ge=1)
    """Longer tokens (hashes, base64, URLs run together) are dropped."""

    @model_validator(mode="after")
    def _check(self) -> BM25Params:
        if self.stopwords is True and self.language.lower() != "english":
            raise ValueError(
                f"the built-in stop word list is English; for language {self.language!r} give "
                "stopwords as a list of words, or stopwords: false"
            )
        if self.min_token_len > self.max_token_len:
            raise ValueError("min_token_len exceeds max_token_len")
        return self


def term_id(token: str) -> int:
    """The sparse index of a processed token: CRC-32 of its UTF-8 bytes, in [0, 2**32)."""
    return zlib.crc32(token.encode("utf-8"))


class BM25Encoder(Encoder):
    """Sparse BM25 vectors: hashed stemmed terms, BM25 term weights, IDF left to the index."""

    name = "bm25"
    Params = BM25Params
    description = "Sparse BM25 term weights (stemmed, stop words removed, hashed term ids); IDF applied by the index."
    extra = "sparse"
    document_modalities = query_modalities = frozenset({Modality.TEXT})
    output, metric, sparse_idf = "sparse", "dot", True  # term weights; IDF comes from the index
    max_batch = 8192

    params: BM25Params

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        p = self.params
        words = ENGLISH_STOP_WORDS if p.stopwords is True else (p.stopwords or ())
        self._stop = frozenset(w.lower() for w in words)  # matched case-insensitively
        self._local = threading.local()  # PyStemmer objects are not thread-safe
        if p.stemmer:
            self._stemmer()  # fail now, not mid-ingest, on a missing package or unknown language

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            where = self.context.where or self.name
            Stemmer = import_optional("Stemmer", where, "sparse", package="PyStemmer")  # noqa: N806
            language = self.params.language.lower()
            if language not in Stemmer.algorithms():
                raise PrismError(
                    f"{where}: no stemmer for language {self.params.language!r}; known: "
                    f"{', '.join(Stemmer.algorithms())} (or set stemmer: false)"
                )
            stemmer = self._local.stemmer = Stemmer.Stemmer(language)
        return stemmer

    # -------------------------------------------------------------- tokenizing

    def _keeps(self, token: str) -> bool:
        p = self.params
        if not p.min_token_len <= len(token) <= p.max_token_len:
            return False
        return (token if p.lowercase else token.lower()) not in self._stop

    def _stem(self, tokens: list[str]) -> list[str]:
        return list(self._stemmer().stemWords(tokens)) if self.params.stemmer else tokens

    def tokenize(self, text: str) -> list[str]:
        """The processed tokens of `text` in order (lowercased, filtered, stemmed), for tests and explain."""
        p = self.params
        return self._stem([t for t in _TOKEN.findall(text.lower() if p.lowercase else text) if self._keeps(t)])

    def _term_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row of each kept token, term id of each kept token), for a batch of texts.

        Each distinct raw token is filtered, stemmed and hashed once; tokens are mapped to
        their first occurrence with C-level iteration (dict.setdefault over a counter).
        """
        p = self.params
        per_doc = [_TOKEN.findall(t.lower() if p.lowercase else t) for t in texts]
        lengths = np.fromiter(map(len, per_doc), dtype=np.int64, count=len(per_doc))
        total = int(lengths.sum())
        first: dict[str, int] = {}  # token -> position of its first occurrence
        codes = np.fromiter(
            map(first.setdefault, itertools.chain.from_iterable(per_doc), itertools.count()),
            dtype=np.int64,
            count=total,
        )
        kept = [t for t in first if self._keeps(t)]
        lookup = np.full(total, -1, dtype=np.int64)
        lookup[np.fromiter(map(first.__getitem__, kept), np.int64, len(kept))] = np.fromiter(
            map(term_id, self._stem(kept)), np.int64, len(kept)
        )
        ids = lookup[codes]
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        keep = ids >= 0
        return rows[keep], ids[keep]

    # ---------------------------------------------------------------- encoding

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> SparseBatch:
        p = self.params
        n = len(contents)
        rows, ids = self._term_ids([as_text(c) for c in contents])
        # one entry per (row, term): sorting the combined key groups duplicates, rows in order
        keys, tf = np.unique((rows << 32) | ids, return_counts=True)
        entry_rows = keys >> 32
        indices = keys & 0xFFFFFFFF
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(entry_rows, minlength=n), out=indptr[1:])
        if role == "query":
            values = np.ones(len(keys), dtype=np.float32)
        else:
            doc_len = np.bincount(rows, minlength=n).astype(np.float64)
            norm = p.k1 * (1.0 - p.b + p.b * doc_len[entry_rows] / p.avg_len)
            values = (tf * (p.k1 + 1.0) / (tf + norm)).astype(np.float32)
        return SparseBatch(indptr, indices.astype(np.int64), values)


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(BM25Encoder)
