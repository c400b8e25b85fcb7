"""Screenshots of the workbench over a real collection and experiment folder (not a test).

    RANKSTACK_DATA=/work/shared/data .venv/bin/python -m tests.browser.shoot_workbench \
        --collection scifact --experiment /tmp/exp-scifact --out /tmp/screens

Serves ``--pipeline`` over the collection with the experiment folder (as ``rankstack serve`` does),
opens the search page, the experiment browser and one query comparison (the query where ``--run``
gains most over the baseline) in headless Chromium and saves PNGs of each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _shot(driver, path: Path, max_height: int = 2600) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 700), max_height))
    time.sleep(0.3)
    driver.save_screenshot(str(path))
    print("wrote", path, file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from rankstack.recipes.serve import ServeConfig
    from rankstack.service.app import create_app
    from tests.browser.conftest import ServerThread, make_driver
    from tests.conftest import find_chromium

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--collection", default="scifact")
    p.add_argument("--experiment", type=Path, required=True)
    p.add_argument("--pipeline", default="bm25(k1=0.9, b=0.4)")
    p.add_argument("--query", default="microstructural development of human white matter")
    p.add_argument("--run", default=None, help="run compared with the baseline (default: the experiment's last)")
    p.add_argument("--out", type=Path, default=Path("/tmp/screens"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    results = json.loads((args.experiment / "results.json").read_text())
    baseline = results["baseline"]
    run = args.run or list(results["pipelines"])[-1]
    measure = results["measures"][0]
    deltas = results["comparison"]["stats"][measure][run]["per_query_delta"]
    best = max(deltas, key=lambda q: (deltas[q], q))
    name = args.experiment.name

    chromium = find_chromium()
    if chromium is None:
        sys.exit("no chromium found")
    app = create_app(ServeConfig(target=args.pipeline, collection=args.collection, experiments=[args.experiment]))
    with ServerThread(app) as server:
        driver = make_driver(chromium)
        try:
            wait = WebDriverWait(driver, 60)
            driver.get(server.url + "/")
            box = wait.until(EC.element_to_be_clickable((By.ID, "q")))
            box.send_keys(args.query)
            driver.find_element(By.ID, "go").click()
            wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#results li.hit")))
            driver.find_elements(By.CSS_SELECTOR, "#results details summary")[0].click()
            _shot(driver, args.out / "search.png")

            driver.get(f"{server.url}/experiments/{name}?run={run}&measure={measure}")
            wait.until(EC.presence_of_element_located((By.ID, "measures")))
            driver.find_element(By.CSS_SELECTOR, "#per-query th[data-key=delta] a").click()  # Δ descending
            _shot(driver, args.out / "experiment.png", max_height=1800)

            driver.get(f"{server.url}/experiments/{name}/query/{best}?a={baseline}&b={run}")
            wait.until(EC.presence_of_element_located((By.ID, "run-b")))
            for summary in driver.find_elements(By.CSS_SELECTOR, "#run-b li.doc.relevant summary")[:2]:
                summary.click()
            _shot(driver, args.out / "query.png")
            print(f"query {best}: {measure} delta {deltas[best]:+.4f} ({run} vs {baseline})", file=sys.stderr)
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
