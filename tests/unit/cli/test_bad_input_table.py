"""The CLI's promise for bad input, case by case: exit status 2, exactly one line on stderr, no
traceback, and the line names the file or the argument at fault (issue 11's cases and more).

Each case writes its files into a fresh workspace (see conftest.py: a BEIR collection 'tiny' under
the data root, good.run, qrels.txt, LETOR folds S1..S5, clicks.jsonl, exp.toml, afile, adir, thesis/)
and runs ``rankstack ARGV`` in-process.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field

import pytest
from tests.unit.cli.clitools import letor_text, run_cli

RUN = b"q1 Q0 d6 1 2.5 t\nq1 Q0 d1 2 1.5 t\n"
QRELS = b"q1 0 d6 2\nq1 0 d1 1\n"
EVAL = ["evaluate", "--collection", "tiny"]
EVALQ = ["evaluate", "--qrels"]
RETRIEVE = ["retrieve", "--collection", "tiny", "--cache-dir", "none", "--out", "o.run"]
ULTR = ["ultr", "train", "--folds", "S1.txt", "S2.txt", "S3.txt", "S4.txt", "S5.txt", "--estimator", "naive"]
LTR = ["ltr", "cv", "--folds", "S1.txt", "S2.txt", "S3.txt", "S4.txt", "S5.txt"]
CLICKS = ["clicks", "simulate", "--folds", "S1.txt", "S2.txt", "S3.txt", "S4.txt", "S5.txt", "--sessions", "5"]
S1 = letor_text(10).encode()


def doc(**fields) -> bytes:
    return json.dumps(fields).encode() + b"\n"


CORPUS = b"".join(doc(_id=f"d{i}", title="t", text=f"text {i}") for i in range(1, 7))
QUERIES = b"".join(doc(_id=q, text="cats") for q in ("q1", "q2", "q3", "q4"))


@dataclass
class Case:
    id: str
    argv: list[str]
    expect: list[str]  # substrings of the one stderr line (file or argument, and the problem)
    files: dict[str, bytes | None] = field(default_factory=dict)  # None: make a folder


def run_case(*, id, file, content, expect) -> Case:
    return Case(id, EVAL + [file], [file] + expect, {file: content})


def qrels_case(*, id, content, expect, name="bad.qrels") -> Case:
    return Case(id, EVALQ + [name, "good.run"], [name] + expect, {name: content})


def coll_case(*, id, files, expect, argv=None) -> Case:
    files = {f"data/tiny/{k}": v for k, v in files.items()}
    return Case(id, argv or RETRIEVE, expect, files)


CASES = [
    # --- TREC run files (evaluate) -------------------------------------------------------------
    run_case(id="run-short-line", file="r.run", content=RUN + b"q2 Q0 d1 1\n", expect=[":3:", "6 columns"]),
    run_case(id="run-score-word", file="r.run", content=RUN + b"q2 Q0 d1 1 high t\n", expect=["'high'"]),
    run_case(id="run-score-nan", file="r.run", content=b"q1 Q0 d1 1 nan t\n", expect=["not finite"]),
    run_case(id="run-score-inf", file="r.run", content=b"q1 Q0 d1 1 -inf t\n", expect=["not finite"]),
    run_case(id="run-score-1e400", file="r.run", content=b"q1 Q0 d1 1 1e400 t\n", expect=["not finite"]),
    run_case(id="run-duplicate", file="r.run", content=RUN + b"q1 Q0 d1 3 0.5 t\n", expect=[":3:", "twice"]),
    run_case(id="run-empty", file="r.run", content=b"", expect=["empty"]),
    run_case(id="run-blank-lines", file="r.run", content=b"\n \n\n", expect=["empty"]),
    run_case(id="run-invalid-utf8", file="r.run", content=RUN + b"q1 Q0 d\xe9 3 0.1 t\n", expect=["UTF-8"]),
    run_case(id="run-bom", file="r.run", content=b"\xef\xbb\xbf" + RUN, expect=["byte-order mark"]),
    run_case(id="run-crlf", file="r.run", content=RUN.replace(b"\n", b"\r\n"), expect=["CRLF"]),
    run_case(id="run-lone-cr", file="r.run", content=RUN.replace(b"\n", b"\r", 1), expect=["carriage return"]),
    run_case(id="run-gzip", file="r.run.gz", content=gzip.compress(RUN * 20), expect=["gzip-compressed",
                                                                                       "decompress"]),
    run_case(id="run-bzip2", file="r.run", content=b"BZh91AY&SY" + RUN, expect=["bzip2"]),
    run_case(id="run-utf16", file="r.run", content=RUN.decode().encode("utf-16"), expect=["UTF-16"]),
    run_case(id="run-nul-bytes", file="r.run", content=RUN + b"\x00\x00\n", expect=["binary"]),
    run_case(id="run-huge-line", file="r.run", content=b"q" * ((1 << 20) + 100), expect=["longer than 1 MiB"]),
    run_case(id="run-rank-word", file="r.run", content=b"q1 Q0 d1 first 2.5 t\n", expect=["rank 'first'"]),
    run_case(id="run-seven-columns", file="r.run", content=b"q1 Q0 d1 1 2.5 t extra\n", expect=["found 7"]),
    Case("run-missing", EVAL + ["nope.run"], ["nope.run", "does not exist"]),
    Case("run-is-folder", EVAL + ["adir"], ["adir", "folder"]),
    Case("run-under-a-file", EVAL + ["afile/x.run"], ["afile/x.run", "part of its path is a file"]),
    Case("run-proc-mem", EVAL + ["/proc/self/mem"], ["/proc/self/mem", "cannot read"]),
    Case("run-two-same-name", EVAL + ["a/x.run", "b/x.run"], ["two runs are named 'x'"],
         {"a/x.run": RUN, "b/x.run": RUN}),
    # --- qrels (evaluate --qrels) ----------------------------------------------------------------
    qrels_case(id="qrels-short-line", content=QRELS + b"q1 0 d2\n", expect=[":3:", "4 columns", "found 3"]),
    qrels_case(id="qrels-relevance-1e20", content=QRELS + b"q2 0 d2 1e20\n", expect=[":3:", "out of range"]),
    qrels_case(id="qrels-relevance-huge-int", content=b"q2 0 d2 99999999999999999999\n", expect=["out of range"]),
    qrels_case(id="qrels-relevance-inf", content=b"q2 0 d2 inf\n", expect=["not a finite integer"]),
    qrels_case(id="qrels-relevance-nan", content=b"q2 0 d2 nan\n", expect=["not a finite integer"]),
    qrels_case(id="qrels-relevance-fraction", content=b"q2 0 d2 1.5\n", expect=["not an integer"]),
    qrels_case(id="qrels-relevance-word", content=b"q2 0 d2 high\n", expect=["'high'"]),
    qrels_case(id="qrels-duplicate", content=QRELS + b"q1 0 d6 0\n", expect=[":3:", "judged twice"]),
    qrels_case(id="qrels-gzip", content=gzip.compress(QRELS), expect=["gzip-compressed"]),
    qrels_case(id="qrels-empty", content=b"", expect=["empty"]),
    qrels_case(id="qrels-bom", content=b"\xef\xbb\xbf" + QRELS, expect=["byte-order mark"]),
    qrels_case(id="qrels-crlf", content=QRELS.replace(b"\n", b"\r\n"), expect=["CRLF"]),
    qrels_case(id="qrels-invalid-utf8", content=b"q\xff 0 d1 1\n", expect=["UTF-8"]),
    qrels_case(id="qrels-beir-header-only", content=b"query-id\tcorpus-id\tscore\n", expect=["no judgements"],
               name="bad.tsv"),
    qrels_case(id="qrels-beir-two-columns", content=b"q1\td1\n", expect=["3 tab-separated columns"],
               name="bad.tsv"),
    qrels_case(id="qrels-huge-line", content=b"1" * ((1 << 20) + 1), expect=["longer than 1 MiB"]),
    Case("qrels-is-folder", EVALQ + ["adir", "good.run"], ["adir", "folder"]),
    Case("qrels-missing", EVALQ + ["nope.txt", "good.run"], ["nope.txt", "does not exist"]),
    Case("qrels-proc-mem", EVALQ + ["/proc/self/mem", "good.run"], ["/proc/self/mem", "cannot read"]),
    # --- collections, splits, corpus and queries --------------------------------------------------
    Case("unknown-split", EVAL + ["--split", "dev", "good.run"], ["unknown split 'dev'", "test"]),
    Case("unknown-split-suggests", EVAL + ["--split", "tset", "good.run"], ["did you mean 'test'"]),
    Case("split-is-a-path", EVAL + ["--split", "../../qrels", "good.run"], ["not a split name"]),
    coll_case(id="empty-qrels-folder", files={"qrels/test.tsv": None}, argv=EVAL + ["good.run"],
              expect=["qrels/ folder is empty"]),
    Case("unknown-collection-suggests", ["evaluate", "--collection", "tinny", "good.run"], ["did you mean 'tiny'"]),
    Case("folder-not-a-collection", ["evaluate", "--collection", "adir", "good.run"], ["adir", "corpus.jsonl"]),
    Case("collection-is-a-file", ["evaluate", "--collection", "afile", "good.run"], ["afile", "neither a folder"]),
    Case("data-root-missing", ["evaluate", "--collection", "tiny", "--data-root", "nowhere", "good.run"],
         ["nowhere", "tiny"]),
    coll_case(id="corpus-invalid-json", files={"corpus.jsonl": CORPUS + b'{"_id": "d9", "text": \n'},
              expect=["corpus.jsonl:7", "invalid JSON"]),
    coll_case(id="corpus-duplicate-id", files={"corpus.jsonl": CORPUS + doc(_id="d1", text="again")},
              expect=["corpus.jsonl:7", "repeats line 1"]),
    coll_case(id="corpus-missing-text", files={"corpus.jsonl": CORPUS + doc(_id="d9", title="t")},
              expect=["corpus.jsonl:7", "'text'"]),
    coll_case(id="corpus-text-not-string", files={"corpus.jsonl": CORPUS + doc(_id="d9", text=5)},
              expect=["corpus.jsonl:7", "must be a string"]),
    coll_case(id="corpus-id-with-space", files={"corpus.jsonl": doc(_id="d 1", text="x")},
              expect=["corpus.jsonl:1", "white space"]),
    coll_case(id="corpus-gzip", files={"corpus.jsonl": gzip.compress(CORPUS)}, expect=["corpus.jsonl", "gzip"]),
    coll_case(id="corpus-bom", files={"corpus.jsonl": b"\xef\xbb\xbf" + CORPUS}, expect=["byte-order mark"]),
    coll_case(id="corpus-crlf", files={"corpus.jsonl": CORPUS.replace(b"\n", b"\r\n")}, expect=["CRLF"]),
    coll_case(id="corpus-invalid-utf8", files={"corpus.jsonl": CORPUS + b'{"_id": "d9", "text": "\xe9"}\n'},
              expect=["corpus.jsonl:7", "UTF-8"]),
    coll_case(id="corpus-deep-nesting", files={"corpus.jsonl": b"[" * 100_000 + b"\n"},
              expect=["corpus.jsonl:1", "nested too deeply"]),
    coll_case(id="corpus-giant-number", files={"corpus.jsonl": b'{"_id": ' + b"7" * 5000 + b', "text": "x"}\n'},
              expect=["corpus.jsonl:1", "JSON"]),
    coll_case(id="corpus-surrogate-id", files={"corpus.jsonl": CORPUS + b'{"_id": "d\\udc80", "text": "x"}\n'},
              expect=["corpus.jsonl:7", "surrogate"]),
    coll_case(id="corpus-not-object", files={"corpus.jsonl": b'["d1", "text"]\n'}, expect=["JSON object"]),
    coll_case(id="queries-empty-text", files={"queries.jsonl": QUERIES + doc(_id="q9", text="  ")},
              expect=["queries.jsonl:5", "empty text"]),
    coll_case(id="queries-duplicate-id", files={"queries.jsonl": QUERIES + doc(_id="q1", text="again")},
              expect=["queries.jsonl:5", "repeats"]),
    coll_case(id="queries-invalid-utf8", files={"queries.jsonl": b'{"_id": "q1", "text": "\xff"}\n'},
              expect=["queries.jsonl:1", "UTF-8"]),
    coll_case(id="queries-numeric-text", files={"queries.jsonl": b'{"_id": "q1", "text": 12}\n'},
              expect=["queries.jsonl:1", "must be a string"]),
    coll_case(id="qrels-name-unknown-query", files={"qrels/test.tsv": b"q99\td1\t1\n"},
              expect=["missing from queries.jsonl"]),
    coll_case(id="qrels-split-file-is-folder", files={"qrels/dev.tsv": None},
              argv=EVAL + ["--split", "dev", "good.run"], expect=["dev.tsv", "is a folder"]),
    coll_case(id="collection-qrels-relevance-1e20", files={"qrels/test.tsv": b"q1\td1\t1e20\n"},
              argv=EVAL + ["good.run"], expect=["test.tsv:1", "out of range"]),
    # --- measures, options, argparse --------------------------------------------------------------
    Case("unknown-measure", EVAL + ["good.run", "-m", "nDGC@10"], ["nDGC@10"]),
    Case("measure-bad-cutoff", EVAL + ["good.run", "-m", "nDCG@x"], ["nDCG@x"]),
    Case("baseline-not-a-run", EVAL + ["good.run", "--baseline", "bm25"], ["baseline 'bm25'"]),
    Case("retrieve-k-zero", RETRIEVE + ["-k", "0"], ["-k"]),
    Case("retrieve-k-word", RETRIEVE + ["-k", "many"], ["argument -k", "'many'"]),
    Case("unknown-verb", ["retreive"], ["invalid choice: 'retreive'"]),
    Case("missing-required-option", ["retrieve", "--collection", "tiny"], ["--out"]),
    Case("bad-choice", EVAL + ["good.run", "--missing", "maybe"], ["--missing", "'maybe'"]),
    Case("no-collection-or-qrels", ["evaluate", "good.run"], ["--collection", "--qrels"]),
    Case("search-empty-query", ["search", "adir", "   "], ["query"]),
    # --- component specs: names, arguments and their types ----------------------------------------
    *[Case("spec-" + re.sub(r"[^\w%>()'=,.\[\]{}:-]+", "_", spec), RETRIEVE + ["--retriever", spec], expect)
      for spec, expect in [
        ("bm25(threads='x')", ["bm25: threads must be an integer, got 'x'"]),
        ("bm25(stemmer=5)", ["bm25: stemmer must be a string or None, got 5"]),
        ("bm25(stopwords=5)", ["bm25: stopwords must be a string, a list of strings or None, got 5"]),
        ("bm25(kl=1.2)", ["unknown argument 'kl'", "did you mean 'k1'?"]),
        ("bm25(k1='high')", ["bm25: k1 must be a number, got 'high'"]),
        ("bm25(k1=True)", ["bm25: k1 must be a number, got True"]),
        ("bm25(k=1.5)", ["bm25: k must be an integer, got 1.5"]),
        ("bm25(fields='title')", ["bm25: fields must be a list of strings"]),
        ("bm25(fields=['body'])", ["fields"]),
        ("bm25(b=2)", ["b must be a number in [0, 1]"]),
        ("bm25(k1=-1)", ["k1"]),
        ("bm25(method='okapi')", ["unknown method 'okapi'"]),
        ("bm26", ["unknown", "did you mean 'bm25'"]),
        ("bm25 % 0", ["positive integer"]),
        ("bm25 % 2.5", ["positive integer"]),
        ("bm25 % 'x'", ["positive integer"]),
        ("bm25 >>", ["cannot parse"]),
        ("bm25 + dense", ["unexpected"]),
        ("bm25\x00", ["null"]),
        ("__import__('os')", ["__import__"]),
        ("bm25(k1=1e400)", ["k1"]),
        ("bm25(index='nowhere')", ["nowhere"]),
        ("reranker", ["reranker needs a model"]),
        ("ltr", ["ltr: missing required argument 'model'"]),
        ("dense(index='ivf9')", ["dense: index 'ivf9'"]),
        ("fuse(bm25, bm25, weights='ab')", ["weights"]),
        ("fuse(bm25, bm25, n=1)", ["unknown argument 'n'"]),
        ("fuse(bm25, bm25, k={[]: 1})", ["literal"]),
        ("bm25(token_pattern='')", ["token_pattern"]),
        ("bm25(stemmer='klingon')", ["klingon"]),
    ]],
    # --- the operating system says no: outputs, caches, folders where files are expected -----------
    Case("out-under-a-file", ["retrieve", "--collection", "tiny", "--cache-dir", "none", "--out", "afile/x.run"],
         ["afile"]),
    Case("out-is-a-folder", ["retrieve", "--collection", "tiny", "--cache-dir", "none", "--out", "adir"], ["adir"]),
    Case("out-under-proc", ["retrieve", "--collection", "tiny", "--cache-dir", "none", "--out", "/proc/x.run"],
         ["--out /proc/x.run"]),
    Case("out-over-proc-file", ["retrieve", "--collection", "tiny", "--cache-dir", "none", "--out",
                                "/proc/version"], ["/proc/version"]),
    Case("out-name-too-long", ["retrieve", "--collection", "tiny", "--cache-dir", "none", "--out", "x" * 300],
         ["--out", "too long"]),
    Case("out-over-the-corpus", ["retrieve", "--collection", "tiny", "--cache-dir", "none", "--out",
                                 "data/tiny/corpus.jsonl"], ["corpus.jsonl"]),
    Case("json-is-a-folder", EVAL + ["good.run", "--json", "adir"], ["adir"]),
    Case("json-under-a-file", EVAL + ["good.run", "--json", "afile/r.json"], ["afile"]),
    Case("json-under-proc", EVAL + ["good.run", "--json", "/proc/r.json"], ["/proc/r.json"]),
    Case("per-query-is-a-folder", EVAL + ["good.run", "good2.run", "--baseline", "good", "--per-query", "adir"],
         ["adir"], {"good2.run": RUN}),
    Case("cache-dir-is-a-file", ["retrieve", "--collection", "tiny", "--out", "o.run", "--cache-dir", "afile"],
         ["--cache-dir", "afile", "is a file"]),
    Case("cache-dir-under-a-file", ["retrieve", "--collection", "tiny", "--out", "o.run", "--cache-dir",
                                    "afile/cache"], ["--cache-dir", "afile", "is a file"]),
    Case("index-out-dot", ["index", "--collection", "tiny", "--out", "."], ["."]),
    Case("index-out-non-artefact-folder", ["index", "--collection", "tiny", "--out", "thesis"], ["thesis"]),
    Case("index-out-is-the-collection", ["index", "--collection", "tiny", "--out", "data/tiny"], ["data/tiny"]),
    Case("index-out-inside-the-collection", ["index", "--collection", "tiny", "--out", "data/tiny/idx"],
         ["data/tiny"]),
    Case("index-out-is-the-data-root", ["index", "--collection", "tiny", "--out", "data"], ["data"]),
    Case("index-out-under-a-file", ["index", "--collection", "tiny", "--out", "afile/idx"], ["afile"]),
    Case("search-not-an-index", ["search", "thesis", "cats"], ["thesis"]),
    Case("search-missing-index", ["search", "nowhere", "cats"], ["nowhere"]),
    Case("search-index-is-a-file", ["search", "afile", "cats"], ["afile"]),
    # --- experiment files ---------------------------------------------------------------------------
    *[Case(f"toml-{name}", ["experiment", "x.toml", "--no-report", "--cache-dir", "none", "--out", "out"],
           ["x.toml"] + expect, {"x.toml": content}) for name, content, expect in [
        ("invalid", b"collection = \n", ["invalid TOML"]),
        ("unknown-key", b'colection = "tiny"\n[pipelines]\nbm25 = "bm25"\n', ["did you mean 'collection'"]),
        ("data-root-int", b'collection = "tiny"\ndata_root = 5\n[pipelines]\nbm25 = "bm25"\n', ["data_root"]),
        ("baseline-list", b'collection = "tiny"\nbaseline = [1]\n[pipelines]\nbm25 = "bm25"\n', ["baseline"]),
        ("no-collection", b'[pipelines]\nbm25 = "bm25"\n', ["collection"]),
        ("no-pipelines", b'collection = "tiny"\n', ["pipelines"]),
        ("pipeline-name", b'collection = "tiny"\n[pipelines]\n"bm 25" = "bm25"\n', ["'bm 25'"]),
        ("bad-measure", b'collection = "tiny"\nmeasures = ["nDGC@10"]\n[pipelines]\nbm25 = "bm25"\n',
         ["nDGC@10"]),
        ("depth-zero", b'collection = "tiny"\ndepth = 0\n[pipelines]\nbm25 = "bm25"\n', ["depth"]),
        ("depth-string", b'collection = "tiny"\ndepth = "deep"\n[pipelines]\nbm25 = "bm25"\n', ["depth"]),
        ("invalid-utf8", b'collection = "t\xffny"\n[pipelines]\nbm25 = "bm25"\n', ["UTF-8"]),
        ("bad-pipeline", b'collection = "tiny"\n[pipelines]\nbm25 = "bm25(threads=\'x\')"\n',
         ["bm25", "threads must be an integer"]),
        ("unknown-component", b'collection = "tiny"\n[pipelines]\nbm25 = "bm26"\n', ["bm26"]),
        ("deep-array", b'collection = "tiny"\nx = ' + b"[" * 5000 + b"]" * 5000 + b'\n', ["nested"]),
    ]],
    Case("experiment-is-a-folder", ["experiment", "adir"], ["adir"]),
    Case("experiment-missing", ["experiment", "nope.toml"], ["nope.toml"]),
    Case("experiment-out-is-a-file", ["experiment", "exp.toml", "--no-report", "--cache-dir", "none",
                                      "--out", "afile"], ["afile"]),
    # --- LETOR folds (ltr cv) -------------------------------------------------------------------------
    *[Case(f"letor-{name}", LTR, ["S1.txt"] + expect, {"S1.txt": content}) for name, content, expect in [
        ("label-1e20", S1 + b"1e20 qid:99 1:0.5\n", [":6:", "finite integer grade"]),
        ("label-inf", S1 + b"inf qid:99 1:0.5\n", ["finite integer grade"]),
        ("label-nan", S1 + b"nan qid:99 1:0.5\n", ["finite integer grade"]),
        ("label-fraction", S1 + b"0.5 qid:99 1:0.5\n", ["integer grade"]),
        ("feature-1e39", S1 + b"1 qid:99 1:1e39\n", ["float32 range"]),
        ("feature-id-huge", S1 + b"1 qid:99 99999999999:1\n", ["larger than 100000"]),
        ("feature-id-zero", S1 + b"1 qid:99 0:1\n", ["1 or more"]),
        ("feature-order", S1 + b"1 qid:99 2:1 1:1\n", ["out of order"]),
        ("feature-nan", S1 + b"1 qid:99 1:nan\n", ["finite"]),
        ("no-qid", S1 + b"1 1:0.5 2:0.5\n", ["qid"]),
        ("non-contiguous", S1 + b"1 qid:10 1:0.5\n", ["contiguous"]),
        ("gzip", gzip.compress(S1), ["gzip"]),
        ("crlf", S1.replace(b"\n", b"\r\n"), ["CRLF"]),
        ("empty", b"", ["empty"]),
        ("huge-line", b"1 qid:1 " + b"1" * (1 << 20), ["longer than 1 MiB"]),
    ]],
    Case("letor-fold-missing", ["ltr", "cv", "--folds", "S1.txt", "S2.txt", "S3.txt", "S4.txt", "S9.txt"],
         ["S9.txt"]),
    Case("letor-fold-is-folder", ["ltr", "cv", "--folds", "S1.txt", "S2.txt", "S3.txt", "S4.txt", "adir"],
         ["adir"]),
    Case("letor-feature-count-differs", LTR, ["feature"], {"S2.txt": letor_text(20).replace(" 3:", " 4:").encode()}),
    Case("ltr-unknown-model", LTR + ["--model", "lambdamrt"], ["did you mean 'lambdamart'"]),
    Case("ltr-model-unknown-argument", LTR + ["--model", "lambdamart(num_leavs=3)"], ["did you mean 'num_leaves'"]),
    Case("ltr-json-is-a-folder", LTR + ["--json", "adir", "--model", "lambdamart(num_boost_round=2)"], ["adir"]),
    # --- click logs (ultr train, clicks simulate) -------------------------------------------------
    *[Case(f"clicks-{name}", ULTR + ["--clicks", "bad.jsonl"], ["bad.jsonl"] + expect, {"bad.jsonl": content})
      for name, content, expect in [
        ("invalid-json", b'{"qid": "10", \n', [":1:", "not valid JSON"]),
        ("unknown-field", b'{"qid": "10", "docids": ["a"], "clicks": [0], "click": [1]}\n', ["did you mean 'clicks'"]),
        ("click-two", b'{"qid": "10", "docids": ["a"], "clicks": [2]}\n', ["0 or 1"]),
        ("propensity-1e400", b'{"qid": "10", "docids": ["a"], "clicks": [1], "propensities": [1e400]}\n',
         ["[0, 1]"]),
        ("propensity-huge-int", b'{"qid": "10", "docids": ["a"], "clicks": [1], "propensities": [' + b"9" * 400
         + b"]}\n", ["[0, 1]"]),
        ("numeric-qid", b'{"qid": 10, "docids": ["a"], "clicks": [1]}\n', ["qid"]),
        ("deep-nesting", b"[" * 100_000 + b"\n", ["nested too deeply"]),
        ("gzip", gzip.compress(b'{"qid": "10", "docids": ["a"], "clicks": [1]}\n'), ["gzip"]),
        ("bom", b'\xef\xbb\xbf{"qid": "10", "docids": ["a"], "clicks": [1]}\n', ["byte-order mark"]),
        ("duplicate-doc", b'{"qid": "10", "docids": ["a", "a"], "clicks": [1, 0]}\n', ["twice"]),
    ]],
    Case("clicks-missing", ULTR + ["--clicks", "nope.jsonl"], ["nope.jsonl"]),
    Case("clicks-is-folder", ULTR + ["--clicks", "adir"], ["adir"]),
    Case("ultr-unknown-estimator", ["ultr", "train", "--folds", "S1.txt", "S2.txt", "S3.txt", "S4.txt", "S5.txt",
                                    "--clicks", "clicks.jsonl", "--estimator", "dlaa"], ["did you mean 'dla'"]),
    Case("clicks-unknown-model", CLICKS + ["--out", "c.jsonl", "--model", "pmb"], ["did you mean 'pbm'"]),
    Case("clicks-out-is-a-folder", CLICKS + ["--out", "adir"], ["adir"]),
    Case("clicks-out-under-a-file", CLICKS + ["--out", "afile/c.jsonl"], ["afile"]),
    Case("clicks-model-bad-type", CLICKS + ["--out", "c.jsonl", "--model", "dcm(continuation='x')"],
         ["continuation"]),
    # --- rerank ---------------------------------------------------------------------------------------
    Case("rerank-model-missing", ["rerank", "--model", "nowhere", "--collection", "tiny", "--run", "good.run",
                                  "--out", "o.run"], ["nowhere"]),
    Case("rerank-model-is-a-file", ["rerank", "--model", "afile", "--collection", "tiny", "--run", "good.run",
                                    "--out", "o.run"], ["afile"]),
    Case("rerank-run-gzip", ["rerank", "--model", "adir", "--collection", "tiny", "--run", "r.gz", "--out", "o.run"],
         ["r.gz"], {"r.gz": gzip.compress(RUN)}),
]


def _write(ws, files):
    for rel, content in files.items():
        target = ws / rel
        if content is None:
            if target.is_file():
                target.unlink()
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_and_status_2(case: Case, ws, capsys):
    _write(ws, case.files)
    if case.id == "empty-qrels-folder":
        (ws / "data/tiny/qrels/test.tsv").rmdir()
        (ws / "data/tiny/qrels/train.tsv").unlink()
    code, _, err = run_cli(case.argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert code == 2, err
    for word in case.expect:
        assert word in lines[0], lines[0]


def test_case_ids_are_distinct():
    assert len({c.id for c in CASES}) == len(CASES)
