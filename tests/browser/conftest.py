"""Real-browser tests: Debian's chromium, driven by Selenium through Debian's chromedriver
(`make browser` installs both; Selenium Manager is never asked to download anything), against
the session's real stack (tests/conftest.py).

The browser runs with every host name but 127.0.0.1 unresolvable, so nothing on a page may come
from the internet; each test can list the requests the page made (``page.requests()``).
Screenshots go to .run/screenshots/ (git-ignored): the test artifacts.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".run" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Flags for a headless chromium on a machine with no internet: no background fetches, and every
# host name but loopback fails to resolve.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--force-device-scale-factor=1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class Page:
    """A chromium window on the stack's gateway, with the helpers the tests share."""

    def __init__(self, driver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str = "/", token: str = "") -> None:
        self.driver.get(self.base_url + "/static/app.css")  # same origin, to set the storage first
        self.driver.execute_script(
            "sessionStorage.clear(); if (arguments[0]) sessionStorage.setItem('digits.token', arguments[0]);",
            token,
        )
        self.driver.get(self.base_url + path)
        if path == "/" or path.startswith("/#"):  # the web app: its script has set itself up
            self.wait_for(
                lambda d: d.execute_script("return document.documentElement.dataset.ready === 'true'")
            )

    def wait_for(self, condition, timeout: float = 20):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.find(css).text

    def visible(self, css: str) -> bool:
        found = self.find_all(css)
        return bool(found) and found[0].is_displayed()

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # The whole page, not only the window: the height the document needs.
        height = self.driver.execute_script("return Math.max(document.body.scrollHeight, window.innerHeight)")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, min(max(height + 140, 600), 4000))
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(path))
        return path

    def requests(self) -> list[str]:
        """The URLs the browser asked for since the last call (the performance log drains)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def errors(self) -> list[str]:
        """Console errors other than failed loads (an API's 4xx the page handles is logged too)."""
        return [
            e["message"]
            for e in self.driver.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
        ]


def left_loopback(urls: list[str]) -> list[str]:
    """The URLs that went anywhere but this machine (data: and blob: URLs stay in the page)."""
    out = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "chrome", "devtools"):
            continue
        if parts.hostname not in ("127.0.0.1", "localhost"):
            out.append(url)
    return out


@pytest.fixture(scope="session")
def chromium_driver(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromedriver are missing: `make browser` installs them (make test does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(
        executable_path=CHROMEDRIVER, log_output=str(tmp_path_factory.mktemp("chromedriver") / "log")
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def page(chromium_driver, stack):
    chromium_driver.set_window_size(1280, 1000)
    page = Page(chromium_driver, stack.config.gateway_url)
    yield page
    # Whatever the test did, nothing left the machine and no script failed.
    assert left_loopback(page.requests()) == []
    assert page.errors() == []


@pytest.fixture()
def user_token(http):
    """A fresh user and its token, so that its history holds only what the test put there."""
    user = f"browser-{uuid.uuid4().hex[:10]}"
    reply = http.post("/v1/tokens", json={"user": user})
    assert reply.status_code in (200, 201), reply.text
    return user, reply.json()["token"]


def endpoint_missing(client, method: str, path: str, **kwargs) -> bool:
    """True while the gateway has no route there (404 not-found), so tests of endpoints the
    backend has not landed yet skip, and turn on by themselves once it has."""
    reply = client.request(method, path, **kwargs)
    return (
        reply.status_code == 404
        and reply.headers.get("content-type", "").startswith("application/problem+json")
        and reply.json().get("type") == "/problems/not-found"
    )
