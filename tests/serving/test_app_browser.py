"""End to end: apps/app.py served on localhost and driven in headless Chromium (Playwright).

These tests use the system's Chromium (Debian's `chromium` package, which .ci/run installs),
never a browser that Playwright downloads. They skip only when no Chromium is found.
"""

import json
import os
import re
import shutil

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium on PATH (apt-get install chromium); the browser tests need it",
        allow_module_level=True,
    )

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.app_support import running_app  # noqa: E402

TIMEOUT_MS = 60_000  # the first model call compiles the model: allow it time
expect.set_options(timeout=TIMEOUT_MS)  # expect() waits 5 s by default (set process-wide)

# Without the background-networking flags Chromium's own connections are refused by a closed
# network, which can stall it; the app itself is on 127.0.0.1.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DETECT, WHOLE = "Detect faces (OpenCV)", "The photo is one face crop"


@pytest.fixture(scope="module")
def app_url(app_repo):
    with running_app(app_repo[0]) as url:
        yield url


@pytest.fixture(scope="module")
def class_names(app_repo):
    """The class names the served model was saved with."""
    return json.loads((app_repo[0] / "keras_sgm.json").read_text())["class_names"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh page (its own browser context) on the app, once the Classify tab is drawn."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app_url)
    expect(page.locator("#classify-status")).to_be_attached()
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def tab(page):
    """The open tab's panel (a visited tab stays in the DOM, hidden; role locators skip it)."""
    panel = page.get_by_role("tabpanel")
    expect(panel).to_have_count(1)
    return panel


def block(page, label):
    """The open tab's component whose label is exactly `label` (Gradio puts it in a `.block`)."""
    name = page.get_by_test_id("block-label").filter(
        has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")
    )
    found = tab(page).locator(".block").filter(has=name)
    expect(found).to_have_count(1)
    return found


def upload(page, label, paths):
    """Upload `paths` to the gr.File labelled `label`; wait until the server has each one."""
    component = block(page, label)
    clear = component.get_by_role("button", name="Clear")
    if clear.count():  # a file is there already: a single-file upload hides its input
        clear.click()
    component.locator("input[type=file]").set_input_files([str(p) for p in paths])
    # Uploaded once each file has its download link to the server's copy: clicking a button
    # while an upload is pending would not send the event.
    links = component.get_by_test_id("download-link")
    expect(links).to_have_count(len(paths))
    for path in paths:
        expect(component.locator(f'a[download="{path.name}"]')).to_have_attribute(
            "href", re.compile(r"/gradio_api/file=")
        )


def table_rows(page, label):
    """The cell texts of each body row of the gr.Dataframe labelled `label`.

    Gradio 6's table is a virtualised ARIA grid; an `aria-hidden` sizing row (widest cells
    mixed from all rows) sits beside the real rows, which the role locators skip.
    """
    rows = page.get_by_role("grid", name=label).get_by_role("row")
    return [row.get_by_role("gridcell").all_inner_texts() for row in rows.all()[1:]]


def test_classify_group_photo_finds_three_faces(page, app_examples, class_names, tmp_path):
    upload(page, "Photo", [app_examples["group"]])
    expect(page.get_by_role("radio", name=DETECT)).to_be_checked()
    page.get_by_role("button", name="Classify", exact=True).click()

    status = page.locator("#classify-status")
    expect(status).to_contain_text("3 face(s) in group_photo.png")
    expect(page.get_by_role("grid", name="Every face")).to_have_attribute("aria-rowcount", "4")
    rows = table_rows(page, "Every face")
    assert [row[0] for row in rows] == ["1", "2", "3"], rows
    bayes = [row[1] for row in rows]
    assert all(name in class_names for name in bayes), (bayes, class_names)
    for row in rows:
        assert 0.0 < float(row[2]) <= 1.0, row
    # The status names face 1's class in bold; it is the table's first row.
    expect(status.locator("strong").first).to_have_text(bayes[0])
    # The photo comes back as one image with the boxes and captions drawn in, shown whole.
    shown = block(page, "Faces found").locator("img")
    expect(shown).to_have_count(1)
    expect(shown).to_have_js_property("complete", True)
    assert shown.evaluate("img => img.naturalWidth") == 600  # the 600x220 group photo

    page.screenshot(path=tmp_path / "classify_group.png", full_page=True)
    shutil.copy(tmp_path / "classify_group.png", "/tmp/app_classify.png")


def test_bad_upload_gets_a_message_and_the_app_keeps_serving(page, app_examples, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("These are notes, not a photo.\n")
    upload(page, "Photo", [bad])
    page.get_by_role("button", name="Classify", exact=True).click()
    status = page.locator("#classify-status")
    expect(status).to_contain_text("⚠️")
    expect(status).to_contain_text(re.compile(r"bad\.jpg is not an image"))
    assert table_rows(page, "Every face") == []

    face = next(p for p in app_examples["faces"] if p.stem == "happiness")
    upload(page, "Photo", [face])
    page.get_by_role("radio", name=WHOLE).check()
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(status).to_contain_text("1 face(s) in happiness.png")
    expect(status).not_to_contain_text("⚠️")
    rows = table_rows(page, "Every face")
    assert len(rows) == 1 and rows[0][0] == "1", rows


def test_browse_clusters_shows_groups_and_map(page, class_names):
    page.get_by_role("tab", name="Browse clusters").click()
    page.get_by_role("button", name="Show", exact=True).click()
    status = page.locator("#browse-status")
    expect(status).to_contain_text(f"{class_names[0]}: 4 EM groups")
    for label in ["group-grid", "embedding-map"]:
        image = tab(page).locator(f"#{label} img")
        expect(image).to_have_count(1)
        expect(image).to_have_attribute("src", re.compile(r"\.png$"))
        # Loaded and decoded by the browser, not just referenced.
        image.evaluate("img => img.decode()")
        assert image.evaluate("img => img.naturalWidth") > 100, label


def test_summarize_album_with_a_bad_file(page, app_examples, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    album = [*app_examples["album"][:6], bad]
    page.get_by_role("tab", name="Summarize album").click()
    upload(page, "Photos", album)
    page.get_by_role("radio", name=WHOLE).check()
    page.get_by_role("button", name="Summarize", exact=True).click()
    status = page.locator("#album-status")
    expect(status).to_contain_text("6 faces chosen from 6 in 7 photo(s)")
    expect(status).to_contain_text(re.compile(r"Skipped: notes\.jpg is not an image"))
    thumbnails = block(page, "Representative faces").locator("img")
    expect(thumbnails).to_have_count(6)


def test_the_warning_comes_first_and_examples_are_clickable_thumbnails(page, tmp_path):
    warning = page.locator("#synthetic-warning")
    expect(warning).to_contain_text("trained on synthetic faces")
    header = page.get_by_role("heading", name=re.compile("Facial expressions"))
    assert warning.bounding_box()["y"] < header.bounding_box()["y"]
    thumbnails = page.locator("#classify-examples img")
    expect(thumbnails.first).to_be_visible()
    assert thumbnails.count() >= 8
    thumbnails.nth(1).click()  # a face crop: it becomes the upload, with its mode
    expect(block(page, "Photo").get_by_test_id("download-link")).to_have_count(1)
    expect(page.get_by_role("radio", name=WHOLE)).to_be_checked()
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.locator("#classify-status")).to_contain_text("1 face(s) in")
    # The album example fits the page: nothing overflows sideways.
    page.get_by_role("tab", name="Summarize album").click()
    expect(page.locator("#album-example img").first).to_be_visible()
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.get_by_role("button", name="Use the example album").click()
    expect(block(page, "Photos").get_by_test_id("download-link")).to_have_count(24)
    page.screenshot(path=tmp_path / "examples.png", full_page=True)
