"""Readers and writers for BEIR folders, TREC runs and qrels, and LETOR files."""

from rankstack.data.beir import Collection, Document, iter_corpus, read_beir_qrels, read_queries
from rankstack.data.letor import LetorData, read_letor, write_letor
from rankstack.data.trec import read_run, read_trec_qrels, write_run, write_trec_qrels

__all__ = ["Collection", "Document", "iter_corpus", "read_beir_qrels", "read_queries", "LetorData",
           "read_letor", "write_letor", "read_run", "read_trec_qrels", "write_run", "write_trec_qrels",
           "read_qrels"]


def read_qrels(path):
    """Read qrels in either TREC (4 columns) or BEIR (3-column TSV) form, by the first data line."""
    from pathlib import Path

    from rankstack.data.textfile import read_lines

    for _, line in read_lines(Path(path), "qrels"):
        cols = line.split()
        if len(cols) == 4:
            return read_trec_qrels(path)
        return read_beir_qrels(path)
    raise AssertionError("unreachable")
