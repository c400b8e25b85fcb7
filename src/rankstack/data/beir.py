"""BEIR-layout collections: ``corpus.jsonl`` (streamed), ``queries.jsonl``, ``qrels/<split>.tsv``.

BEIR qrels files usually start with a ``query-id corpus-id score`` header, but not always (the
msmarco_dl19_subset copy has none): the first line is a header only if its score column is not a
number, so no judgement is ever dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankstack.data import textfile
from rankstack.data.textfile import read_lines
from rankstack.data.trec import _parse_relevance
from rankstack.errors import InputError, suggest
from rankstack.types import Qrels, Queries

__all__ = ["Document", "Collection", "read_queries", "read_beir_qrels", "iter_corpus", "iter_corpus_chunks",
           "default_data_root", "resolve_collection"]

DATA_ROOT_ENV = "RANKSTACK_DATA"


@dataclass(frozen=True)
class Document:
    docid: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """Title and text joined, the field first stages and rerankers read by default."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


def parse_json_line(line: str, path: Path | None, number: int, fix: str = "one JSON object per line",
                    problem: str = "invalid JSON") -> object:
    """``json.loads`` of one line; every way it can fail is an InputError naming the line."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{problem} ({exc.msg} at column {exc.colno})", path=path, line=number,
                         fix=fix) from None
    except RecursionError:
        raise InputError(f"{problem} (nested too deeply)", path=path, line=number, fix=fix) from None
    except ValueError as exc:  # e.g. an integer literal with more than 4300 digits
        raise InputError(f"{problem} ({exc})", path=path, line=number, fix=fix) from None


def _json_objects(path: Path, what: str, max_line: int | None = None) -> Iterator[tuple[int, dict]]:
    for number, line in read_lines(path, what, max_line=max_line):
        obj = parse_json_line(line, path, number)
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, found {type(obj).__name__}", path=path, line=number)
        yield number, obj


def _field(obj: dict, key: str, path: Path, number: int, required: bool = True) -> str:
    if key not in obj:
        if required:
            raise InputError(f"missing field {key!r} (found {sorted(obj)})", path=path, line=number)
        return ""
    value = obj[key]
    if value is None and not required:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "_id":
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"field {key!r} must be a string, found {type(value).__name__}", path=path,
                         line=number)
    if "\ud800" <= max(value, default="") and _has_surrogate(value):
        raise InputError(f"field {key!r} holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)",
                         path=path, line=number, fix="escape characters outside the BMP as surrogate "
                         "pairs, or write them as UTF-8")
    return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def iter_corpus(path: str | Path) -> Iterator[Document]:
    """Stream documents of a ``corpus.jsonl``; checks ids are present, non-empty and unique."""
    path = Path(path)
    seen: dict[str, int] = {}
    for number, obj in _json_objects(path, "corpus", max_line=textfile.MAX_DOCUMENT_LINE_BYTES):
        docid = _field(obj, "_id", path, number)
        if not docid.strip() or any(c.isspace() for c in docid):
            raise InputError(f"document id {docid!r} is empty or contains white space", path=path,
                             line=number)
        if docid in seen:
            raise InputError(f"document id {docid!r} repeats line {seen[docid]}", path=path, line=number,
                             fix="give every document a unique _id")
        seen[docid] = number
        title = _field(obj, "title", path, number, required=False)
        text = _field(obj, "text", path, number)
        yield Document(docid, title, text)


def iter_corpus_chunks(path: str | Path, chunk_size: int = 10_000) -> Iterator[list[Document]]:
    """The corpus in lists of at most ``chunk_size`` documents (the same checks as :func:`iter_corpus`).

    Why: indexing and encoding a large corpus chunk by chunk keeps memory bounded by the chunk, not
    the corpus (the reader holds one line at a time plus the set of ids seen, for the uniqueness check).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    chunk: list[Document] = []
    for doc in iter_corpus(path):
        chunk.append(doc)
        if len(chunk) == chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_queries(path: str | Path) -> Queries:
    """Read ``queries.jsonl``; an empty query text is an error (it cannot be retrieved for)."""
    path = Path(path)
    qids, texts, seen = [], [], {}
    for number, obj in _json_objects(path, "queries"):
        qid = _field(obj, "_id", path, number)
        text = _field(obj, "text", path, number)
        if not qid.strip() or any(c.isspace() for c in qid):
            raise InputError(f"query id {qid!r} is empty or contains white space", path=path, line=number)
        if not text.strip():
            raise InputError(f"query {qid!r} has an empty text", path=path, line=number,
                             fix="remove the query or give it a text")
        if qid in seen:
            raise InputError(f"query id {qid!r} repeats line {seen[qid]}", path=path, line=number)
        seen[qid] = number
        qids.append(qid)
        texts.append(text)
    return Queries(tuple(qids), tuple(texts))


def read_beir_qrels(path: str | Path) -> Qrels:
    """Read a BEIR qrels TSV (``query-id corpus-id score``), with or without its header row."""
    path = Path(path)
    q, d, r = [], [], []
    seen: dict[tuple[str, str], int] = {}
    first = True
    for number, line in read_lines(path, "qrels"):
        cols = line.split("\t") if "\t" in line else line.split()
        if first:
            first = False
            if len(cols) == 3 and not _is_number(cols[2]):
                continue  # header row
        if len(cols) != 3:
            raise InputError(f"expected 3 tab-separated columns 'query-id corpus-id score', found "
                             f"{len(cols)}: {line[:80]!r}", path=path, line=number)
        qid, docid = cols[0].strip(), cols[1].strip()
        rel = _parse_relevance(cols[2].strip(), path, number)
        if (qid, docid) in seen:
            raise InputError(f"document {docid!r} is judged twice for query {qid!r} (first on line "
                             f"{seen[(qid, docid)]})", path=path, line=number)
        seen[(qid, docid)] = number
        q.append(qid)
        d.append(docid)
        r.append(rel)
    if not q:
        raise InputError("qrels file has a header but no judgements", path=path)
    return Qrels(np.array(q), np.array(d), np.array(r, dtype=np.int64), name=path.stem)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def default_data_root() -> Path:
    """``$RANKSTACK_DATA`` if set, else ``../shared/data`` beside the current folder or the repo."""
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data"


def resolve_collection(name_or_path: str | Path, data_root: str | Path | None = None) -> Path:
    """A collection folder from a path, or from a name looked up under the data root."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    root = Path(data_root) if data_root else default_data_root()
    if not p.is_absolute() and (root / p).is_dir():
        return root / p
    try:
        known = sorted(c.name for c in root.iterdir() if c.is_dir()) if root.is_dir() else []
    except OSError:
        known = []
    close = suggest(str(name_or_path), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise InputError(f"collection {str(name_or_path)!r} is neither a folder nor a name under the "
                     f"data root {str(root)!r}", fix=f"{hint}pass a BEIR folder, or set --data-root / "
                     f"${DATA_ROOT_ENV}" + (f"; collections there: {', '.join(known)}" if known else ""))


class Collection:
    """A BEIR folder: streams the corpus, reads queries and qrels, serves document texts by id."""

    def __init__(self, path: str | Path, data_root: str | Path | None = None) -> None:
        self.path = resolve_collection(path, data_root)
        for name in ("corpus.jsonl", "queries.jsonl"):
            if not (self.path / name).is_file():
                raise InputError(f"not a BEIR collection folder: {name} is missing", path=self.path,
                                 fix="a collection holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
        self.name = self.path.name
        self._docs: dict[str, Document] | None = None

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r})"

    @property
    def corpus_path(self) -> Path:
        return self.path / "corpus.jsonl"

    def corpus(self) -> Iterator[Document]:
        return iter_corpus(self.corpus_path)

    def corpus_chunks(self, chunk_size: int = 10_000) -> Iterator[list[Document]]:
        """The corpus in lists of at most ``chunk_size`` documents (bounded memory)."""
        return iter_corpus_chunks(self.corpus_path, chunk_size)

    def splits(self) -> list[str]:
        qdir = self.path / "qrels"
        return sorted(p.stem for p in qdir.glob("*.tsv") if p.is_file()) if qdir.is_dir() else []

    def qrels(self, split: str = "test") -> Qrels:
        if not isinstance(split, str) or not split or split in (".", "..") or "/" in split \
                or "\\" in split or "\x00" in split:
            raise InputError(f"split {split!r} is not a split name", path=self.path / "qrels",
                             fix=f"choose one of {self.splits() or '(none found)'}")
        path = self.path / "qrels" / f"{split}.tsv"
        if path.is_dir():
            raise InputError(f"qrels of split {split!r} is a folder, expected a TSV file", path=path,
                             fix="replace it with a 'query-id corpus-id score' TSV file")
        if not path.is_file():
            qdir = self.path / "qrels"
            known = self.splits()
            if known:
                close = suggest(split, known, n=1)
                hint = (f"did you mean {close[0]!r}? " if close else "") + f"choose one of {known}"
            elif qdir.is_dir():
                hint = f"the qrels/ folder is empty: add qrels/{split}.tsv ('query-id corpus-id score')"
            elif qdir.exists():
                hint = "qrels is a file; it must be a folder holding <split>.tsv files"
            else:
                hint = f"the collection has no qrels/ folder: add qrels/{split}.tsv"
            raise InputError(f"unknown split {split!r} for collection {self.name!r}", path=path, fix=hint)
        return read_beir_qrels(path)

    def queries(self, split: str | None = "test") -> Queries:
        """Queries of ``split`` (those judged in its qrels), or all of them when ``split`` is None."""
        queries = read_queries(self.path / "queries.jsonl")
        if split is None:
            return queries
        judged = self.qrels(split).query_ids
        unknown = [q for q in judged if q not in queries]
        if unknown:
            raise InputError(f"qrels of split {split!r} name {len(unknown)} query id(s) missing from "
                             f"queries.jsonl, e.g. {unknown[0]!r}", path=self.path / "qrels" / f"{split}.tsv")
        return queries.subset(q for q in queries.qids if q in set(judged))

    def documents(self) -> dict[str, Document]:
        """All documents by id, loaded once (collections here fit in memory)."""
        if self._docs is None:
            self._docs = {doc.docid: doc for doc in self.corpus()}
        return self._docs

    def doc_texts(self, docids) -> list[str]:
        docs = self.documents()
        out = []
        for d in docids:
            try:
                out.append(docs[str(d)].contents)
            except KeyError:
                raise InputError(f"document id {d!r} is not in {self.corpus_path}",
                                 fix="the run and the collection do not match") from None
        return out
