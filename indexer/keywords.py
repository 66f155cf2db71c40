"""Chinese keyword search: jieba with a domain dictionary, stop words, and bm25s on disk.

Tokens are computed once at index time and stored with each chunk, so the bm25
index can be rebuilt from the database without segmenting again.
"""
from __future__ import annotations

import hashlib
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .metadata import DOC_NUMBER_RE, normalise_doc_number

RESOURCES = Path(__file__).resolve().parent / "resources"
USER_DICT = RESOURCES / "userdict.txt"
STOP_WORDS_FILE = RESOURCES / "stopwords.txt"
_ARTICLE_NO_RE = re.compile(r"第[一二三四五六七八九十百零〇两\d]+条")
_KEEP_RE = re.compile(r"[\u4e00-\u9fff]|[A-Za-z0-9]")


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    return frozenset(w.strip() for w in STOP_WORDS_FILE.read_text(encoding="utf-8").split("\n") if w.strip())


def doc_number_tokens(raw: str) -> list[str]:
    """A 文号 as exact tokens. The agency code's start is not marked in running text
    (“根据青政发〔2023〕15号”), so emit the year+serial and each 2–6 character code suffix."""
    number = normalise_doc_number(raw)
    code, bracket, rest = number.partition("〔")
    serial = bracket + rest
    return [serial] + [code[-n:] + serial for n in range(2, min(6, len(code)) + 1)]


class Tokenizer:
    """jieba (search mode) plus exact tokens for 文号 and 第X条; extra user dictionaries optional."""

    def __init__(self, extra_dicts: Sequence[Path] = ()):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        self._jieba.load_userdict(str(USER_DICT))
        self.dict_files = [USER_DICT, *[Path(p) for p in extra_dicts if Path(p).exists()]]
        for path in self.dict_files[1:]:
            self._jieba.load_userdict(str(path))
        self._stop = stop_words()

    @property
    def fingerprint(self) -> str:
        """Changes when any dictionary changes, so the index knows to re-segment."""
        digest = hashlib.sha1()
        for path in self.dict_files:
            digest.update(path.read_bytes())
        digest.update(STOP_WORDS_FILE.read_bytes())
        return digest.hexdigest()[:12]

    def tokenize(self, text: str) -> list[str]:
        tokens = [t for m in DOC_NUMBER_RE.findall(text) for t in doc_number_tokens(m)]
        tokens += _ARTICLE_NO_RE.findall(text)
        for word in self._jieba.cut_for_search(text):
            word = word.strip().lower()
            if word and word not in self._stop and _KEEP_RE.search(word):
                tokens.append(word)
        return tokens


class KeywordIndex:
    """bm25s over chunk tokens; `ids[i]` is the chunk id of bm25 document i."""

    def __init__(self, retriever, ids: np.ndarray):
        self.retriever = retriever
        self.ids = ids
        self._vocab = getattr(retriever, "vocab_dict", None) or {}
        self._row_of = {int(cid): row for row, cid in enumerate(ids)}

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], ids: Sequence[int]) -> "KeywordIndex":
        import bm25s

        retriever = bm25s.BM25()
        corpus = [tokens or ["\u2205"] for tokens in token_lists]
        if corpus:
            retriever.index(corpus, show_progress=False)
        return cls(retriever, np.asarray(ids, dtype=np.int64))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if len(self.ids):
            self.retriever.save(str(folder), show_progress=False)
        np.save(folder / "chunk_ids.npy", self.ids)

    @classmethod
    def load(cls, folder: Path) -> "KeywordIndex":
        import bm25s

        ids = np.load(folder / "chunk_ids.npy")
        if len(ids):
            retriever = bm25s.BM25.load(str(folder), mmap=False, show_progress=False, verbosity=0)
        else:
            retriever = bm25s.BM25()
            retriever.vocab_dict = {}
        return cls(retriever, ids)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every indexed chunk (row order of `ids`)."""
        known = [t for t in query_tokens if t in self._vocab]
        if not known or not len(self.ids):
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32)

    def search(self, query_tokens: Sequence[str], k: int, allowed: np.ndarray | None = None):
        """Top-k (chunk_ids, scores) with score > 0; `allowed` is a boolean row mask."""
        scores = self.scores(query_tokens)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if not len(positive):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        k = min(k, len(positive))
        top = positive[np.argpartition(-scores[positive], k - 1)[:k]]
        top = top[np.argsort(-scores[top], kind="stable")]
        return self.ids[top], scores[top]

    def rows_for(self, chunk_ids: Iterable[int]) -> np.ndarray:
        mask = np.zeros(len(self.ids), dtype=bool)
        rows = [self._row_of[c] for c in chunk_ids if c in self._row_of]
        mask[rows] = True
        return mask
