"""The comparison page in a real browser (headless Chromium driven by Playwright): sorting, filtering,
search, paging and the enlarged page image work from the DOM. CI installs the browser and sets
GOT_LIGHTNING_REQUIRE_BROWSER=1, so a missing browser fails there instead of skipping."""

import json
import os
import shutil

import pytest

from tests.helpers import run_executable, text_page

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report_browser")]  # one worker builds the module's shared runs
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
# Without these a headless Chromium keeps trying to reach Google's servers from a closed network.
QUIET = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def browser_path() -> str:
    found = os.environ.get("GOT_LIGHTNING_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if found and _has_playwright():
        return found
    if os.environ.get("GOT_LIGHTNING_REQUIRE_BROWSER"):
        pytest.fail("GOT_LIGHTNING_REQUIRE_BROWSER is set but no Chromium or no playwright package was found")
    pytest.skip("needs a Chromium (apt install chromium-headless-shell) and the playwright package")


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """250 samples in two datasets: improved, regressed, unchanged and still wrong ones, with pages."""
    folder = tmp_path_factory.mktemp("browser")
    base, tuned = [], []
    for i in range(250):
        page = text_page(folder / "pages" / f"{i:03d}.png", size=(600, 160), text=f"page {i}")
        reference = f"line {i} reads 1999"
        before = reference if i % 5 == 0 else reference.replace("1999", "1899")
        after = reference.replace("1999", "19990") if i % 5 == 0 else reference if i % 2 else reference.replace("99", "89")
        common = {
            "image": f"{i:03d}.png",
            "image_path": str(page),
            "reference": reference,
            "dataset": "guji" if i < 150 else "letters",
        }
        base.append({**common, "prediction": before})
        # Every 7th fine-tuned page stopped at the token limit; every 21st of those loops.
        looping = i % 21 == 0
        tuned.append(
            {
                **common,
                "prediction": after + " again" * 8 if looping else after,
                "truncated": i % 7 == 0,
                "confidence": {"mean": (i % 10) / 10 + 0.05, "min": 0.01},
            }
        )
    for name, rows in (("base", base), ("tuned", tuned)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = run_executable("compare", str(folder / "base.jsonl"), str(folder / "tuned.jsonl"), "--html", str(folder / "r.html"))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "r.html", json.loads((folder / "r.json").read_text(encoding="utf-8"))


@pytest.fixture
def page(report):
    from playwright.sync_api import sync_playwright

    executable = browser_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=QUIET)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(report[0].as_uri())
        yield tab, report[1]
        assert not errors
        browser.close()


def rows(tab, attribute):
    return tab.eval_on_selector_all("#sample-rows tr", f"rows => rows.map(r => r.dataset.{attribute})")


def test_the_table_pages_and_sorts(page):
    tab, summary = page
    assert len(rows(tab, "image")) == 100 and tab.text_content("#shown").startswith("rows 1\u2013100 of 250")
    first = [int(v) for v in rows(tab, "tunedEdits")]
    assert first == sorted(first, reverse=True) and first[0] == max(entry["tuned_edits"] for entry in summary["still_wrong"])
    tab.click('th[data-key="edit_change"]')
    changes = [int(v) for v in rows(tab, "editChange")]
    assert changes == sorted(changes, reverse=True) and changes[0] > 0
    tab.click('th[data-key="edit_change"]')
    assert [int(v) for v in rows(tab, "editChange")][0] == min(entry["edit_change"] for entry in summary["improved"])
    tab.click("#next")
    assert tab.text_content("#shown").startswith("rows 101\u2013200 of 250")


def test_the_table_filters_by_status_dataset_and_text(page):
    tab, summary = page
    tab.select_option("#filter-status", "regressed")
    assert set(rows(tab, "status")) == {"regressed"} and len(rows(tab, "status")) == summary["counts"]["regressed"]
    tab.select_option("#filter-status", "wrong")
    assert len(rows(tab, "image")) == min(100, summary["counts"]["still_wrong"])
    tab.select_option("#filter-status", "all")
    tab.select_option("#filter-dataset", "letters")
    assert set(rows(tab, "dataset")) == {"letters"} and "of 100 " in tab.text_content("#shown")
    tab.fill("#search", "line 217 ")
    assert rows(tab, "image") == ["217.png"]


def test_the_table_shows_and_filters_pages_that_hit_the_token_limit_or_loop(page):
    tab, summary = page
    tab.select_option("#filter-status", "truncated")
    truncated = rows(tab, "image")
    assert truncated and all(int(image[:3]) % 7 == 0 for image in truncated) and set(rows(tab, "truncated")) == {"true"}
    assert len(truncated) == min(100, summary["failures"]["tuned"]["num_truncated"])
    tab.select_option("#filter-status", "repetition")
    assert sorted(rows(tab, "image")) == sorted(f"{i:03d}.png" for i in range(0, 250, 21))
    assert "loop" in tab.text_content("#sample-rows tr td:nth-child(6)")
    tab.select_option("#filter-status", "all")
    tab.click('th[data-key="confidence"]')
    tab.click('th[data-key="confidence"]')  # ascending: the pages to check first
    assert tab.text_content("#to-check tr:nth-child(2) td:nth-child(2)") == "0.0500"


def test_a_page_image_enlarges_on_click(page):
    tab, _ = page
    thumb = tab.locator("#sample-rows img.thumb").first
    shown_width = thumb.bounding_box()["width"]
    thumb.click()
    assert tab.locator("#lightbox").get_attribute("class") == "open"
    enlarged = tab.locator("#lightbox img").bounding_box()
    assert enlarged["width"] > 2 * shown_width
    tab.keyboard.press("Escape")
    assert tab.locator("#lightbox").get_attribute("class") == ""
