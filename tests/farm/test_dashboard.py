"""The dashboard in a real headless browser (Debian's chromium driven by Selenium
through Debian's chromedriver; nothing downloaded): what the pages show is
checked against the store, downloads against the rows, a planted regression is
marked where it was planted and nowhere else, the page is read-only by default,
and with --allow-submit a run queued again from the page runs on a real agent."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pytest

from device_farm.store import ResultStore
from device_farm.testing.postgres import wait_until
from device_farm.testing.sshd import free_port, wait_port
from device_farm.testing.synthetic import fill_store
from edgert.formatting import fmt_num
from tests.conftest import require_tool
from tests.farm.team_helpers import AgentProcess, env, submit, write_inventory

pytestmark = [pytest.mark.needs_browser]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    for tool in ("chromium", "chromedriver"):
        require_tool(tool)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="edgert-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    os.environ["SE_OFFLINE"] = "true"     # Selenium Manager never fetches anything
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()
    import shutil
    shutil.rmtree(profile, ignore_errors=True)


class Dashboard:
    def __init__(self, store: str, cache: str, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgert", "farm", "serve", "--store", store, "--port",
             str(self.port), *flags], env=env(cache), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        try:
            wait_port(self.port, 60)
        except BaseException:
            self.stop()
            raise

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, models):
    """Four runs of two files on three devices; run 3 of dev1 made 30 % slower."""
    d = tmp_path_factory.mktemp("dash")
    db = str(d / "dash.sqlite")
    runs = fill_store(db, [models["onnx"], models["mnn"]], runs=4, devices=3,
                      slower={(3, "dev1"): 1.3})
    dash = Dashboard(db, str(d / "cache"))
    yield {"db": db, "runs": runs, "dash": dash}
    dash.stop()


def test_runs_and_a_run_page_show_the_store(browser, synthetic):
    from selenium.webdriver.common.by import By

    dash, db = synthetic["dash"], synthetic["db"]
    browser.get(dash.url + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr[data-run]")
    assert [r.get_attribute("data-run") for r in rows] == list(reversed(synthetic["runs"]))
    assert rows[0].find_elements(By.TAG_NAME, "td")[4].text == "6"     # planned
    rows[0].find_element(By.LINK_TEXT, "run-0003").click()
    assert browser.find_element(By.ID, "counts").text == \
        "6 planned: 6 ok, 0 failed, 0 not run"
    with ResultStore(db) as store:
        by_id = {r["id"]: r for r in store.results("run-0003")}
    cells = browser.find_elements(By.CSS_SELECTOR, "table.overview td[data-result]")
    assert len(cells) == 6
    for c in cells:
        row = by_id[int(c.get_attribute("data-result"))]
        assert c.get_attribute("data-device") == row["device"]
        assert c.find_element(By.TAG_NAME, "a").text == fmt_num(row["median_ms"])
    cells[0].find_element(By.TAG_NAME, "a").click()       # one result: every number
    rid = int(browser.current_url.rsplit("/", 1)[1])
    assert browser.find_element(By.CSS_SELECTOR, 'td[data-key="job_key"]').text == \
        by_id[rid]["job_key"]


def test_a_models_history_marks_the_planted_regression(browser, synthetic):
    from selenium.webdriver.common.by import By

    browser.get(synthetic["dash"].url + "/models")
    groups = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#models a")]
    assert groups == ["tiny"]
    browser.find_element(By.LINK_TEXT, "tiny").click()

    def compared():   # the comparisons are computed behind the page, which reloads
        browser.refresh()
        return not browser.find_elements(By.ID, "pending")
    wait_until(compared, 60, "the history's comparisons", every=0.5)
    marked = []
    for tr in browser.find_elements(By.CSS_SELECTOR, "#history tr")[1:]:
        tds = tr.find_elements(By.TAG_NAME, "td")
        for i, td in enumerate(tds[2:]):
            if td.get_attribute("data-verdict") == "regression":
                marked.append((tds[1].text, i, td.get_attribute("title")))
    # both files of dev1 in the 4th run, nothing else (the others vary by ~3 % noise)
    assert sorted((d, i) for d, i, _ in marked) == [("dev1", 3), ("dev1", 3)]
    assert all(re.match(r"\d+\.\d % slower \(95 % CI \+", t) for _, _, t in marked)
    assert browser.find_element(By.ID, "regressions").text == "2"


def test_downloads_are_the_stored_rows(synthetic):
    dash, db = synthetic["dash"], synthetic["db"]
    with ResultStore(db) as store:
        rows = store.results("run-0002")
    got = json.loads(dash.get("/runs/run-0002/results.json"))
    assert [(r["id"], r["median_ms"], r["latencies_json"]) for r in got] == \
        [(r["id"], r["median_ms"], r["latencies_json"]) for r in rows]
    table = list(csv.DictReader(io.StringIO(dash.get("/runs/run-0002/results.csv").decode())))
    assert [(int(r["id"]), float(r["median_ms"])) for r in table] == \
        [(r["id"], r["median_ms"]) for r in rows]
    one = json.loads(dash.get(f"/results/{rows[0]['id']}.json"))
    assert one == [json.loads(json.dumps(rows[0]))]


def test_read_only_by_default(synthetic):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(
            synthetic["dash"].url + "/runs/run-0001/again", data=b"runs=5", method="POST"))
    assert err.value.code == 403
    with ResultStore(synthetic["db"]) as store:
        assert len(store.runs()) == 4
    page = synthetic["dash"].get("/runs/run-0001").decode()
    assert "(read-only)" in page and 'id="again"' not in page


@pytest.mark.needs_postgres
def test_live_devices_and_queueing_from_the_page(browser, pg_store, models, tmp_path, agents):
    """On a team store: the devices page shows the agent's device online, then busy; with
    --allow-submit, "queue this run again" queues a run the agent runs."""
    from selenium.webdriver.common.by import By

    cache = str(tmp_path / "cache")
    inv = write_inventory(tmp_path / "devices.toml")
    agent = AgentProcess(pg_store, inv, ["host"], "D1", cache, tmp_path)
    agents.append(agent)
    dash = None
    try:
        agent.wait_online()
        first = submit(pg_store, [models["onnx"]], ["host"], cache)
        dash = Dashboard(pg_store, cache, "--allow-submit")
        browser.get(dash.url + "/devices")
        row = browser.find_element(By.CSS_SELECTOR, 'tr[data-device="host"]')
        assert row.find_element(By.CSS_SELECTOR, "td.state").text in ("online", "busy")
        assert "D1 on" in row.text
        browser.get(dash.url + f"/runs/{first}")
        browser.find_element(By.ID, "again").click()
        wait_until(lambda: "/runs/run-" in browser.current_url
                   and first not in browser.current_url, 30, "the new run's page")
        new = browser.current_url.rsplit("/", 1)[1]

        def done():
            browser.get(dash.url + f"/runs/{new}")
            return browser.find_element(By.ID, "status").text == "done"
        wait_until(done, 120, "the queued run done", every=0.5)
        with ResultStore(pg_store) as store:
            row, = store.results(new)
            assert store.run(new)["argv"] == json.dumps(["dashboard", "again", first])
        assert row["status"] == "ok" and row["agent"] == "D1"
    finally:
        if dash is not None:
            dash.stop()
        assert agent.stop() == 0
