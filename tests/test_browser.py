"""The headless-browser helper itself: a page opens, and console errors are caught."""

from __future__ import annotations

from browser import browser_page, console_errors


def test_browser_page_runs_script_and_collects_console_errors():
    with browser_page() as page:
        errors = console_errors(page)
        page.set_content("<p id=x>ok</p><script>console.error('boom'); document.getElementById('x').textContent = 'ran';</script>")
        assert page.inner_text("#x") == "ran"
    assert errors == ["console.error: boom"]
