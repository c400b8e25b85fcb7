"""The workbench in headless Chromium: search with highlights, the experiment browser's measures
table and delta sort, and a query comparison with judgements, rank changes and expandable texts."""

from __future__ import annotations

import json
import os

import pytest

if os.environ.get("RANKSTACK_REQUIRE_BROWSER") != "1":   # CI: a missing selenium is an error, not a skip
    pytest.importorskip("selenium")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.browser.workbench_data import SCRIPT_DOC  # noqa: E402

WAIT = 15


def _wait(browser):
    return WebDriverWait(browser, WAIT)


def _qids(browser) -> list[str]:
    return [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#per-query a.qid")]


def test_search_shows_highlighted_results(browser, workbench_url):
    browser.get(workbench_url + "/")
    box = _wait(browser).until(EC.element_to_be_clickable((By.ID, "q")))
    box.clear()
    box.send_keys("cats purr")
    browser.find_element(By.ID, "go").click()
    _wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#results li.hit")))
    hits = browser.find_elements(By.CSS_SELECTOR, "#results li.hit")
    assert len(hits) >= 3
    marks = [m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, "#results .snippet mark")]
    assert marks and all(m.startswith(("cat", "purr")) for m in marks)
    # the document holding <script> shows it as text; the page runs no script but the workbench's own
    assert any(SCRIPT_DOC == d.text for d in browser.find_elements(By.CSS_SELECTOR, "#results .docid"))
    assert "alert('xss')" in browser.find_element(By.ID, "results").get_attribute("textContent")
    scripts = browser.find_elements(By.TAG_NAME, "script")
    assert [s.get_attribute("src").rsplit("/", 1)[-1] for s in scripts] == ["workbench.js"]
    assert browser.execute_script("return document.querySelectorAll('#results b, #results i').length") == 0


def test_experiment_browser_sorts_by_delta(browser, workbench_url, workbench_folders):
    browser.get(workbench_url + "/")
    browser.find_element(By.LINK_TEXT, "Experiments").click()
    _wait(browser).until(EC.element_to_be_clickable((By.LINK_TEXT, "tiny-exp"))).click()
    table = _wait(browser).until(EC.presence_of_element_located((By.ID, "measures")))
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text.split()[0] for r in rows] == ["bm25", "bm25_tf", "fused"]
    data = json.loads((workbench_folders[1] / "results.json").read_text())
    assert f"{data['mean']['bm25_tf']['nDCG@10']:.4f}" in rows[1].text

    deltas = data["comparison"]["stats"]["nDCG@10"]["bm25_tf"]["per_query_delta"]
    before = _qids(browser)
    assert [deltas[q] for q in before] == sorted(deltas.values())          # server order: Δ ascending
    header = browser.find_element(By.CSS_SELECTOR, "#per-query th[data-key=delta] a")
    header.click()
    _wait(browser).until(lambda b: _qids(b) != before)
    after = _qids(browser)
    assert [deltas[q] for q in after] == sorted(deltas.values(), reverse=True)
    th = browser.find_element(By.CSS_SELECTOR, "#per-query th[data-key=delta]")
    assert th.get_attribute("aria-sort") == "descending"
    assert browser.current_url.endswith("/experiments/tiny-exp")            # sorted in place, no reload


def test_query_comparison_side_by_side(browser, workbench_url):
    browser.get(workbench_url + "/experiments/tiny-exp?sort=-delta")
    first = _wait(browser).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#per-query a.qid")))
    assert first.text == "q7"                                                # the biggest win
    first.click()
    a = _wait(browser).until(EC.presence_of_element_located((By.ID, "run-a")))
    b = browser.find_element(By.ID, "run-b")
    assert "bm25" in a.find_element(By.TAG_NAME, "h2").text
    assert "bm25_tf" in b.find_element(By.TAG_NAME, "h2").text
    docs_b = b.find_elements(By.CSS_SELECTOR, "li.doc")
    assert docs_b and docs_b[0].get_attribute("data-docid") == "d16"
    assert docs_b[0].find_element(By.CSS_SELECTOR, ".grade").text == "rel 2"
    assert docs_b[0].find_element(By.CSS_SELECTOR, ".change").text.startswith("\u25b2")
    d16_a = a.find_element(By.CSS_SELECTOR, "li.doc[data-docid=d16] .change")
    assert d16_a.text == "\u21921"                                          # A's column: its rank in B
    assert "non-rel" in [g.text for g in a.find_elements(By.CSS_SELECTOR, ".grade")]
    # a document's text is collapsed until its title is clicked
    text = docs_b[0].find_element(By.CSS_SELECTOR, ".doctext")
    assert not text.is_displayed()
    docs_b[0].find_element(By.CSS_SELECTOR, "summary").click()
    _wait(browser).until(lambda _: text.is_displayed())
    assert "parrots" in text.text
    browser.find_element(By.ID, "expand-all").click()
    assert all(t.is_displayed() for t in browser.find_elements(By.CSS_SELECTOR, "#run-a .doctext"))
