"""Screenshots of the web app for the docs: ``docs/img/ui-*.png``.

Run with ``.venv/bin/python scripts/screenshots.py`` (needs Chromium: ``make browser``).

The library shown holds only synthetic pictures (coloured shapes drawn here), never photos of real
people: screenshots end up in the repository, and a real person's face must never be committed.
No face is found in such pictures, which is fine: the screenshots show the pages, not results.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, sync_playwright

from facesearch import Library
from facesearch.api import create_app
from facesearch.governance import add_user
from facesearch.web import mount_web
from facesearch.web.background import serving

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def synthetic_picture(path: Path, seed: int) -> Path:
    """Circles and rectangles on a plain background: an image without anyone in it."""
    rng = random.Random(seed)
    image = Image.new("RGB", (480, 360), tuple(rng.randrange(150, 240) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(0, 400), rng.randrange(0, 280)
        size = rng.randrange(30, 120)
        colour = tuple(rng.randrange(20, 200) for _ in range(3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x, y, x + size, y + size], fill=colour)
    image.save(path, "JPEG", quality=90)
    return path


def build_library(folder: Path) -> tuple[Path, dict[str, str]]:
    pictures = [synthetic_picture(folder / f"shape-{i}.jpg", i) for i in range(4)]
    library = folder / "lib"
    keys = {}
    with Library.open(library, jitter=0) as lib:
        lib.create_collection("synthetic")
        lib.index([str(p) for p in pictures[1:]], collection="synthetic", workers=1)
        _, keys["admin"] = add_user(lib.catalog, "admin", "admin")
        for name, role in (("j.doe", "investigator"), ("a.auditor", "auditor"), ("ingest-bot", "ingester")):
            _, keys[role] = add_user(lib.catalog, name, role, actor="admin")
    return pictures[0], keys


def sign_in(browser: Browser, url: str, key: str, role: str) -> Page:
    """A new page (its own sessionStorage, so signed out) signed in with ``key``."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#who-role").filter(has_text=role).wait_for()
    return page


def shoot(page: Page, out: Path, name: str) -> None:
    path = out / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        probe, keys = build_library(Path(tmp))
        app = create_app(Path(tmp) / "lib", rate_limit_per_minute=0, ingest_workers=1)
        mount_web(app)
        with serving(app) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url + "/")
            page.get_by_label("API key").wait_for()
            shoot(page, args.out, "signin")

            page = sign_in(browser, url, keys["investigator"], "investigator")
            page.locator("#probe-file").set_input_files(str(probe))
            page.get_by_label("Case ID").fill("2024-0173")
            page.get_by_label("Purpose").fill("identify the person in the CCTV still from the 12 May burglary")
            page.get_by_role("button", name="Search", exact=True).click()
            page.locator("#error, .results .card").first.wait_for()  # "no face found": these are shapes
            shoot(page, args.out, "search")

            page = sign_in(browser, url, keys["auditor"], "auditor")
            page.locator("#chain-status").wait_for()
            page.locator("tbody tr").first.wait_for()
            shoot(page, args.out, "audit")

            page = sign_in(browser, url, keys["admin"], "admin")
            page.get_by_role("link", name="Users").click()
            page.locator("tbody tr").first.wait_for()
            shoot(page, args.out, "users")
            page.get_by_role("link", name="Collections").click()
            page.locator("tbody tr").first.wait_for()
            shoot(page, args.out, "collections")
            page.get_by_role("link", name="Add photos").click()
            page.get_by_text("No jobs yet.").wait_for()
            shoot(page, args.out, "ingest")
            browser.close()


if __name__ == "__main__":
    main()
