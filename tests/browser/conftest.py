"""Fixtures of the browser tier: a live `qrcontact serve` and Debian's Chromium driven by
Playwright, both module-scoped (a module starts one server and one browser)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.service import Service


@pytest.fixture(scope="module")
def console_server(tmp_path_factory) -> Iterator[Service]:
    """`qrcontact serve` as an operator runs it, without replication; stopped by its PID."""
    # One client drives every journey, and the console's forms count against the per-client limit.
    service = Service(tmp_path_factory.mktemp("console") / "data", REPLICA_URL="off", RATE_LIMIT_PER_MINUTE="100000").start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        # CI installs it (.ci/run): there a missing browser must fail, not pass the journeys by skipping them.
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium at /usr/bin/chromium")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
