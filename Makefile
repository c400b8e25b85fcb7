# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv and installs rankstack with what it needs; torch is pinned to the CPU build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DATA ?= ../shared/data

.PHONY: demo demo-bm25 test install bench-bm25 clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The main job: BM25, dense MiniLM and their hybrids on SciFact test, with significance tests and an
# HTML report in out/scifact/ (the first run encodes the corpus, a few minutes; later runs use the cache).
demo: $(STAMP)
	RANKSTACK_DATA=$(DATA) $(VENV)/bin/rankstack experiment examples/scifact.toml --out out/scifact

# The BM25-only job of the foundation (seconds): retrieve, then evaluate.
demo-bm25: $(STAMP)
	mkdir -p out
	RANKSTACK_DATA=$(DATA) $(VENV)/bin/rankstack retrieve --collection scifact --split test --retriever bm25 -k 1000 --out out/scifact-bm25.run
	RANKSTACK_DATA=$(DATA) $(VENV)/bin/rankstack evaluate --collection scifact --split test out/scifact-bm25.run -m nDCG@10 -m AP -m R@100 -m RR@10 -m P@5

test: $(STAMP)
	RANKSTACK_DATA=$(DATA) $(PY) -m pytest -q -p no:cacheprovider

bench-bm25: $(STAMP)
	RANKSTACK_DATA=$(DATA) $(PY) benchmarks/bench_bm25.py --repeats 5

clean:
	rm -rf $(VENV) out .cache
