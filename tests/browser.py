"""Headless Chromium for tests that open a page the lab writes (or serves) in a real browser.

    from browser import browser_page, console_errors, artifact_dir

    def test_page(tmp_path):
        with browser_page() as page:          # skips the test, with the reason, when no browser can be had
            errors = console_errors(page)      # filled as the page logs errors
            page.goto(url)
            ...
            page.screenshot(path=artifact_dir() / "page.png")
        assert not errors

The browser is Debian's ``chromium`` (``.ci/run`` installs it with apt when missing) driven by the
``playwright`` package (dev extra); ``LAB_CHROMIUM`` names another executable. Playwright's own
browser download is never used: nothing is fetched at test time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

# Flags for a container without a sandbox, GPU or network; the autoplay flag is not needed for
# clicks (a click is a user gesture) but keeps tests that start audio from script deterministic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]

ARTIFACTS = Path(os.environ.get("LAB_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


def chromium_path() -> str | None:
    """The Chromium executable to drive: ``$LAB_CHROMIUM``, else the first of chromium, chromium-browser, google-chrome on PATH."""
    env = os.environ.get("LAB_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def artifact_dir() -> Path:
    """Folder for screenshots and other test artifacts (``tests/artifacts/``, ignored by git; ``$LAB_TEST_ARTIFACTS``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@contextlib.contextmanager
def browser_page(*, width: int = 1280, height: int = 900) -> Iterator["playwright.sync_api.Page"]:  # noqa: F821
    """A fresh page in headless Chromium; ``pytest.skip`` with the reason where no browser can be had."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium executable found (apt-get install chromium, as .ci/run does, or set LAB_CHROMIUM)")
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, timeout=60_000)
        except PlaywrightError as err:
            pytest.skip(f"Chromium at {exe} did not start: {str(err).strip().splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def console_errors(page) -> list[str]:
    """A list that collects the page's console errors and uncaught exceptions from now on."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors
