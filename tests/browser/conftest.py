"""Fixtures of the dashboard's browser tests: one headless Chromium per module and
dashboard servers over the test Redis (helpers in ``_browser``)."""

from __future__ import annotations

import shutil
import tempfile

import pytest
from _browser import CHROMEDRIVER, CHROMIUM, TOKEN, Server


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rlc-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1400,1500",
                f"--user-data-dir={profile}"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def server_factory(redis_store):
    started = []

    def start(token: str | None = TOKEN) -> Server:
        s = Server(redis_store, token)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
