"""report.html (livecam/batch/report.py): the galleries' choices and order, and the page in Chromium offline."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import require_tool
from livecam.batch.report import write_report


def _row(name: str, **fields) -> dict:
    row = {
        "input": f"in/{name}.png", "overlay": f"overlays/in/{name}.png", "frame_index": 0, "class_id": 0,
        "class_name": "dog", "probability": 0.9, "label": 0, "label_name": "dog", "layer": "conv",
    }  # fmt: skip
    row.update(fields)
    return row


@pytest.fixture
def report(tmp_path) -> Path:
    """A DIR with overlays and rows that have the trust fields (box_energy, faithfulness)."""
    rows = [
        _row("a", box_energy=0.9, faith_shown=0.9, faith_hot_hidden=0.1),
        _row("b", box_energy=0.1, faith_shown=0.9, faith_hot_hidden=0.85),  # heat outside, map explains nothing
        _row("c", box_energy=0.4, faith_shown=0.9, faith_hot_hidden=0.5),
        _row("d", box_energy=0.05, probability=0.3),  # not confident: not in the box gallery
        _row("e", class_id=1, class_name="cat", probability=0.99),  # a confident mistake
        _row("f", class_id=1, class_name="cat", probability=0.6),
    ]
    for row in rows:
        path = tmp_path / row["overlay"]
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((48, 64, 3), 120, np.uint8))
    inputs = [SimpleNamespace(kind="image")] * len(rows)
    write_report(
        tmp_path, rows, [{"input": "in/bad.png", "error": "corrupt"}], inputs=inputs, settings={"livecam": "0.1"}, seconds=2.0
    )
    return tmp_path / "report.html"


def _gallery(page: str, slug: str) -> list[str]:
    section = page.split(f"id='{slug}'", 1)[1].split("</div>", 1)[0]
    return re.findall(r"data-input='in/(\w)\.png'", section)


def test_galleries_sort_the_worst_first(report):
    page = report.read_text()
    assert _gallery(page, "confident-and-right-but") == ["b", "c", "a"]  # lowest box_energy first; d is not confident
    assert _gallery(page, "the-map-does-not") == ["b", "c", "a"]  # smallest drop first
    assert _gallery(page, "most-confident-mistakes") == ["e", "f"]
    assert "4 of 6 right: 66.7 %" in page
    assert "http" not in page.replace("http-equiv", "")  # nothing from the network


def test_galleries_without_the_fields_say_which_run_fills_them(tmp_path):
    write_report(tmp_path, [_row("a")], [], inputs=[SimpleNamespace(kind="image")], settings={}, seconds=1.0)
    page = (tmp_path / "report.html").read_text()
    assert "No row has box_energy" in page and "run with --faithfulness 1" in page


@pytest.mark.browser
def test_report_opens_offline_in_chromium_and_its_links_resolve(report):
    executable = require_tool("chromium", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-proxy-server"])
        try:
            page = browser.new_page()
            page.route("http*://**", lambda route: route.abort())  # offline: anything asked of a network fails the test below
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(report.as_uri())
            items = page.locator("#the-map-does-not figure").evaluate_all("els => els.map(e => e.dataset.input)")
            assert items == ["in/b.png", "in/c.png", "in/a.png"]
            sizes = page.locator("#most-confident-mistakes img").evaluate_all("els => els.map(e => e.naturalWidth)")
            assert sizes and all(width > 0 for width in sizes)  # the thumbnails inside the page decode
            hrefs = page.locator("a").evaluate_all("els => els.map(e => e.href)")
            assert hrefs and all(Path(href.removeprefix("file://")).is_file() for href in hrefs)
            page.locator("#most-confident-mistakes a").first.click()
            page.wait_for_url("**/overlays/in/e.png")
            assert not failed, failed
        finally:
            browser.close()
