"""Screenshots of a case for docs/investigation.md, with drawn shapes in place of every face (issue 13).

Writes ``docs/img/case-page.png`` (1280 px wide), ``docs/img/case-page-phone.png`` (390 px) and
``docs/img/case-report.png`` (the case's HTML report, downloaded from the web app, opened in the
browser). Run it from the repository root with ``make docs-screenshots`` or::

    PYTHONPATH=src:. .venv/bin/python -m scripts.docs_screenshots [--out DIR] [--data DIR]

It needs Debian's Chromium (``make browser``) and the example photos of ../shared/data (or
``$FACESEARCH_DATA``).

Why drawn shapes: screenshots are committed, and no photo of a real person may ever be. A case needs
real faces to find anything, so the scratch library is built from copies of the example photos
(``face_recognition_examples``, renamed ``photo-NNN``), but none of their pixels reaches a screenshot:

- the browser's every image response from the API (thumbnails, whole photos, probe crops: any
  ``image/*`` answer, whatever its route) is replaced with a face drawn here from circles, by
  ``page.route``, before the page sees it;
- the report's ``data:image/...`` URIs are replaced with drawn faces before it is opened;
- before each screenshot, every ``<img>`` on the page is read back from the browser and its bytes must
  be one of the drawn pictures (anything else stops the script: no screenshot is written), and no
  canvas, video, frame or CSS background image may be on the page.

The web pages are still changing, so the browser is driven by roles, labels and visible text (as
tests/test_web_cases.py drives it); where a control is not there (a report download button), the
script says so and falls back to the same API call.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from facesearch import Library
from facesearch.api import create_app
from facesearch.governance import add_user
from facesearch.web import mount_web
from facesearch.web.background import serving

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MAX_PNG_BYTES = 300_000
MAX_HEIGHT = 3400  # px of a full-page screenshot kept (the report's audit table runs on)
TIMEOUT_MS = 30_000

PERSON = "barack_obama"  # the person the case looks for: one photo is the probe, the others are found
PROBE = "obama1.jpg"
LATER = "obama2.jpg"  # kept out of the library: uploaded after the watch is added, it raises the alert
CASE = "2026-0173"
PURPOSE = "identify the man in the CCTV stills of the 12 May burglary"
LEGAL_BASIS = "warrant 24/117"
FIRST, SECOND = "j.doe", "a.smith"

log = logging.getLogger("docs_screenshots")


class DrawnFaces:
    """Faces drawn from circles (no person's pixels), and a record of every picture handed out.

    ``seen`` holds the SHA-256 of each drawn picture, so that the page's images can be checked
    against it: an image whose bytes are not in it came from somewhere else.
    """

    PALETTE = [(244, 201, 93), (137, 196, 244), (170, 222, 167), (240, 160, 160), (200, 170, 230), (250, 190, 140)]

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.count = 0

    def png(self, width: int, height: int) -> bytes:
        """A smiling face of circles on a plain background, ``width`` x ``height``."""
        width, height = max(16, min(width, 5000)), max(16, min(height, 5000))
        colour = self.PALETTE[self.count % len(self.PALETTE)]
        self.count += 1
        image = Image.new("RGB", (width, height), (236, 239, 243))
        draw = ImageDraw.Draw(image)
        side = min(width, height) * 0.8
        cx, cy = width / 2, height / 2
        r = side / 2
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=(60, 60, 60), width=max(1, int(r / 25)))
        eye = r / 7
        for dx in (-r / 2.6, r / 2.6):
            draw.ellipse([cx + dx - eye, cy - r / 3 - eye, cx + dx + eye, cy - r / 3 + eye], fill=(40, 40, 40))
        mouth = [cx - r / 2, cy - r / 6, cx + r / 2, cy + r / 2]
        draw.arc(mouth, start=20, end=160, fill=(40, 40, 40), width=max(1, int(r / 14)))
        out = io.BytesIO()
        image.save(out, "PNG", optimize=True)
        data = out.getvalue()
        self.seen.add(hashlib.sha256(data).hexdigest())
        return data

    def like(self, data: bytes) -> bytes:
        """A drawn face of the size of the picture ``data`` (its pixels are read for nothing else)."""
        try:
            with Image.open(io.BytesIO(data)) as real:
                size = real.size
        except Exception:  # noqa: BLE001 - an unreadable picture still gets a drawn one, of a thumbnail's size
            size = (150, 150)
        return self.png(*size)

    def is_drawn(self, data: bytes) -> bool:
        return hashlib.sha256(data).hexdigest() in self.seen


def build_library(folder: Path, data: Path) -> tuple[Path, dict[str, str]]:
    """Copies of the example portraits under neutral names (no one's name in a path), indexed; users.

    Two photos of the person are left out: the probe, and ``intake-0977.jpg``, uploaded later."""
    photos = folder / "photos" / "archive"
    photos.mkdir(parents=True)
    examples = data / "face_recognition_examples" / "by_identity"
    probe = folder / "photos" / "still-0412.jpg"
    n = 0
    for source in sorted(examples.glob("*/*")):
        if source.parent.name == PERSON and source.name in (PROBE, LATER):
            shutil.copyfile(source, probe if source.name == PROBE else folder / "photos" / "intake-0977.jpg")
            continue
        n += 1
        shutil.copyfile(source, photos / f"photo-{n:03d}{source.suffix.lower()}")
    library = folder / "lib"
    keys: dict[str, str] = {}
    with Library.open(library, jitter=0) as lib:
        lib.create_collection("archive")
        lib.index([str(photos)], collection="archive", workers=1)
        for name, role in ((FIRST, "investigator"), (SECOND, "investigator"), ("admin", "admin")):
            _, keys[name] = add_user(lib.catalog, name, role)
    return probe, keys


def replace_images(faces: DrawnFaces) -> Callable[[Route], None]:
    """A route handler: every image the API answers (any route) reaches the page as a drawn face."""

    def handle(route: Route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        response = route.fetch()
        if not response.headers.get("content-type", "").startswith("image/"):
            route.fulfill(response=response)
            return
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        route.fulfill(
            status=response.status, headers=headers, content_type="image/png", body=faces.like(response.body())
        )

    return handle


def new_context(browser: Browser, url: str, viewport: dict[str, int], faces: DrawnFaces) -> BrowserContext:
    # bypass_csp: the app's connect-src forbids fetch(blob:), which assert_only_drawn needs to read its images back.
    context = browser.new_context(viewport=viewport, accept_downloads=True, bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.route(f"{url}/v1/**", replace_images(faces))
    return context


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


LOADED = "[...document.images].every((i) => i.complete && (i.currentSrc || i.getAttribute('src')))"
PAGE_PICTURES = """async () => {
  const out = { images: [], other: [] };
  for (const img of document.querySelectorAll("img")) {
    const src = img.currentSrc || img.getAttribute("src") || "";
    if (!src) continue;  // shows no pixels
    const bytes = new Uint8Array(await (await fetch(src)).arrayBuffer());
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    out.images.push({ src: src.slice(0, 60), data: btoa(text) });
  }
  for (const el of document.querySelectorAll("canvas, video, iframe, object, embed, picture source, image")) {
    out.other.push(el.tagName.toLowerCase());
  }
  for (const el of document.querySelectorAll("*")) {
    for (const pseudo of [null, "::before", "::after"]) {
      const bg = getComputedStyle(el, pseudo).backgroundImage;
      if (bg && bg.includes("url(")) out.other.push(`background ${bg.slice(0, 60)}`);
    }
  }
  return out;
}"""


def assert_only_drawn(page: Page, faces: DrawnFaces, where: str) -> int:
    """Every picture on the page is a drawn face, and nothing else can show pixels; the count of pictures.

    An ``<img>`` still loading is waited for; an ``<img>`` of the app's own static files (an icon) is
    allowed only when it is not an answer of the API (those all pass through ``replace_images``).
    """
    try:  # a thumbnail's src is set once its fetch is done: wait for them (an <img> without one shows nothing)
        page.wait_for_function(LOADED, timeout=10_000)
    except PlaywrightTimeout:
        log.warning("%s: an <img> without a source after 10 s (it shows nothing)", where)
    found = page.evaluate(PAGE_PICTURES)
    if found["other"]:
        raise SystemExit(f"{where}: the page shows pictures other than <img>: {found['other']}; no screenshot taken")
    for image in found["images"]:
        src = image["src"]
        if image["data"] is None or not faces.is_drawn(base64.b64decode(image["data"])):
            static = src.startswith(("http://", "https://")) and "/v1/" not in src and src.endswith(".svg")
            if not static:
                raise SystemExit(f"{where}: an image on the page is not a drawn face ({src!r}); no screenshot taken")
    return len(found["images"])


def save_png(page: Page, path: Path, *, full_page: bool = True) -> None:
    """A screenshot, cut at MAX_HEIGHT and reduced to a palette, so that the file stays small."""
    raw = page.screenshot(full_page=full_page)
    with Image.open(io.BytesIO(raw)) as shot:
        image = shot.convert("RGB")
    if image.height > MAX_HEIGHT:
        image = image.crop((0, 0, image.width, MAX_HEIGHT))
    image = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, "PNG", optimize=True)
    size = path.stat().st_size
    if size > MAX_PNG_BYTES:
        raise SystemExit(f"{path} is {size:,} bytes (more than {MAX_PNG_BYTES:,})")
    log.info("wrote %s (%s x %s, %s bytes)", path, image.width, image.height, f"{size:,}")


def decide(page: Page, candidate: int, decision: str, note: str) -> None:
    """Record a decision on the ``candidate``-th result card, from its compare view."""
    card = page.locator(".candidate").nth(candidate)
    card.get_by_role("button", name="Compare & review").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Your decision").select_option(decision)
    dialog.get_by_label(re.compile("^Note")).fill(note)
    dialog.get_by_role("button", name="Record decision").click()
    expect(dialog.get_by_role("status")).to_contain_text(decision.split()[0])
    dialog.get_by_role("button", name="Close").click()


def first_investigator(browser: Browser, url: str, keys: dict[str, str], probe: Path, faces: DrawnFaces) -> None:
    """j.doe opens the case (naming a.smith), searches in it and records three decisions (two leads, one unsure)."""
    context = new_context(browser, url, DESKTOP, faces)
    page = context.new_page()
    sign_in(page, url, keys[FIRST])
    page.get_by_role("link", name="Cases", exact=True).click()
    form = page.get_by_role("form", name="Create a case")
    form.get_by_label("Case ID").fill(CASE)
    form.get_by_label("Case purpose").fill(PURPOSE)
    form.get_by_label("Legal basis").fill(LEGAL_BASIS)
    form.get_by_label("Users working it").fill(SECOND)
    form.get_by_role("button", name="Create case").click()
    page.get_by_role("link", name=CASE, exact=True).first.click()
    page.get_by_role("link", name="Search in this case").click()
    expect(page.get_by_label("Case", exact=True)).to_have_value(CASE)
    page.locator("#probe-file").set_input_files(str(probe))  # the one input without a visible label of its own
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator(".candidate").first.wait_for()
    decide(page, 0, "confirmed lead", "same scar above the left eyebrow; same hairline")
    decide(page, 1, "confirmed lead", "ear shape agrees; photo is older")
    decide(page, 2, "inconclusive", "face half hidden by the cap: cannot tell")
    context.close()


def watch_and_alert(playwright: Playwright, url: str, keys: dict[str, str], folder: Path) -> None:
    """j.doe watches for the person (API); an admin then uploads a new photo of him, which raises an alert.

    Through the API rather than the page: the watch form is still changing, and the screenshots only
    need the case to hold a watch and an alert."""
    api = playwright.request.new_context(base_url=url)
    probe = (folder / "photos" / "still-0412.jpg").read_bytes()
    expires = (date.today() + timedelta(days=180)).isoformat()
    answer = api.post(
        f"/v1/cases/{CASE}/watches",
        headers={"Authorization": f"Bearer {keys[FIRST]}"},
        multipart={
            "photo": {"name": "still-0412.jpg", "mimeType": "image/jpeg", "buffer": probe},
            "expires": expires,
            "label": "suspect A",
        },
    )
    if not answer.ok:
        raise SystemExit(f"the watch could not be added: {answer.status} {answer.text()[:200]}")
    later = (folder / "photos" / "intake-0977.jpg").read_bytes()
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    job = api.post(
        "/v1/ingest/uploads",
        headers=admin,
        multipart={
            "files": {"name": "intake-0977.jpg", "mimeType": "image/jpeg", "buffer": later},
            "collection": "archive",
        },
    )
    if not job.ok:
        raise SystemExit(f"the upload was refused: {job.status} {job.text()[:200]}")
    deadline = time.monotonic() + 120
    status = job.json()
    while status["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the job's own status, with a deadline
        status = api.get(f"/v1/jobs/{status['id']}", headers=admin).json()
    alerts = api.get("/v1/alerts", headers={"Authorization": f"Bearer {keys[FIRST]}"}).json().get("alerts", [])
    if status["status"] != "done" or not alerts:
        raise SystemExit(f"the upload raised no alert (job {status['status']}, {len(alerts)} alerts)")
    log.info("watch added; the upload raised %d alert(s)", len(alerts))
    api.dispose()


def second_investigator(browser: Browser, url: str, keys: dict[str, str], faces: DrawnFaces, out: Path) -> bytes:
    """a.smith reviews one lead blind; the case page is shot with the other still awaiting them; the report."""
    context = new_context(browser, url, DESKTOP, faces)
    page = context.new_page()
    sign_in(page, url, keys[SECOND])
    page.goto(f"{url}/#/case/{CASE}")
    expect(page.get_by_role("heading", name=f"Case {CASE}")).to_be_visible()
    task = page.locator(".second-reviews .task").first
    task.get_by_label("Your decision").select_option("confirmed lead")
    task.get_by_label(re.compile("^Note")).fill("independently: same person (scar, ear)")
    task.get_by_role("button", name="Record my review").click()
    expect(page.get_by_text(re.compile(f"Second review: confirmed lead by {re.escape(SECOND)}"))).to_be_visible()
    page.locator(".second-reviews .task img").first.wait_for()
    shown = assert_only_drawn(page, faces, "case page")
    log.info("case page: %d pictures, all drawn", shown)
    save_png(page, out / "case-page.png")
    report = download_report(page, url, keys[SECOND])
    context.close()

    phone = new_context(browser, url, PHONE, faces)
    page = phone.new_page()
    sign_in(page, url, keys[SECOND])
    page.goto(f"{url}/#/case/{CASE}")
    expect(page.get_by_role("heading", name=f"Case {CASE}")).to_be_visible()
    page.locator(".second-reviews .task img").first.wait_for()
    assert_only_drawn(page, faces, "case page (phone)")
    save_png(page, out / "case-page-phone.png")
    phone.close()
    return report


def download_report(page: Page, url: str, key: str) -> bytes:
    """The case's HTML report as the web app downloads it; the API's own answer where the page has no button."""
    control = page.get_by_role("button", name=re.compile("report", re.I)).or_(
        page.get_by_role("link", name=re.compile("report", re.I))
    )
    html = control.filter(has_text=re.compile("html", re.I))
    chosen = html.first if html.count() else control.first
    if control.count():
        with page.expect_download() as download:
            chosen.click()
        path = download.value.path()
        if path is not None and Path(path).read_bytes().lstrip().lower().startswith(b"<!doctype html"):
            log.info("report downloaded from the case page (%s)", download.value.suggested_filename)
            return Path(path).read_bytes()
    log.warning("the case page has no HTML report download: fetched it from GET /v1/cases/%s/report", CASE)
    answer = page.request.get(
        f"{url}/v1/cases/{CASE}/report", params={"format": "html"}, headers={"Authorization": f"Bearer {key}"}
    )
    if not answer.ok:
        raise SystemExit(f"the report could not be fetched: {answer.status} {answer.text()[:200]}")
    return answer.body()


DATA_IMAGE = re.compile(rb"data:image/[a-z+.-]+;base64,([A-Za-z0-9+/=\s]+)")


def drawn_report(report: bytes, faces: DrawnFaces) -> bytes:
    """The report with each ``data:image`` URI replaced by a drawn face of the same size."""

    def swap(match: re.Match[bytes]) -> bytes:
        real = base64.b64decode(match.group(1))
        return b"data:image/png;base64," + base64.b64encode(faces.like(real))

    drawn, count = DATA_IMAGE.subn(swap, report)
    if count == 0:
        raise SystemExit("the report holds no data: image: its layout changed, update drawn_report")
    log.info("report: %d pictures replaced with drawn faces", count)
    return drawn


def shoot_report(browser: Browser, report: bytes, faces: DrawnFaces, folder: Path, out: Path) -> None:
    path = folder / "report.html"
    path.write_bytes(drawn_report(report, faces))
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)  # the report's CSP forbids fetch(data:)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(path.as_uri())
    shown = assert_only_drawn(page, faces, "report")
    log.info("report: %d pictures, all drawn", shown)
    save_png(page, out / "case-report.png")
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data"))
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.data / "face_recognition_examples").is_dir():
        raise SystemExit(f"no example photos in {args.data} (set --data or FACESEARCH_DATA)")
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        raise SystemExit("Chromium not found: install it with `make browser`")
    args.out.mkdir(parents=True, exist_ok=True)
    faces = DrawnFaces()
    with tempfile.TemporaryDirectory(prefix="facesearch-docs-") as tmp:
        folder = Path(tmp)
        probe, keys = build_library(folder, args.data)
        app = create_app(folder / "lib", rate_limit_per_minute=0, ingest_workers=1)
        mount_web(app, "/v1")
        with serving(app) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
            first_investigator(browser, url, keys, probe, faces)
            watch_and_alert(playwright, url, keys, folder)
            report = second_investigator(browser, url, keys, faces, args.out)
            shoot_report(browser, report, faces, folder, args.out)
            browser.close()


if __name__ == "__main__":
    main()
