"""Issue 13, "Done when": a whole investigation in the web app, at 1280x800 and at 390x844, in a real browser.

Each width gets one library (a copy of the run's example gallery, biden.jpg, the probe, left out) and one live
server, shared by the steps of the story, and asserts after every page it visits that nothing scrolls sideways
(``scrollWidth <= innerWidth``, tests/test_web_mobile.py ``assert_fits``):

1. an investigator opens a case (naming a colleague), searches in it and confirms a lead;
2. the colleague confirms it blind: the second-review task shows the probe's kept crop and the candidate,
   never the first decision, its note or its reviewer;
3. the report downloads from the case page (the browser's download), its SHA-256 is the one shown;
   ``facesearch case verify-report`` accepts the file and rejects it after one byte changed, and so does
   the page's "Check a report";
4. an admin adds a watch on the case page (Obama, from obama1.jpg); an ingester adds a photo of a stranger
   (no alert) and then a new photo of Obama (obama.jpg, never indexed): one alert, in the badge and on the
   alerts page of the case's investigator (seen once opened), not for an investigator outside the case;
   the watch is stopped after a confirmation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from facesearch import Library
from facesearch.api import create_app
from facesearch.governance import add_user
from facesearch.web import mount_web
from facesearch.web.background import serving
from tests.helpers import copy_library, run_cli
from tests.test_web import PROBE, TIMEOUT_MS, Site, sign_in  # noqa: F401 (fixtures)
from tests.test_web_mobile import SIZES, assert_fits, drawn_photo

CASE = "2026-0042"
PURPOSE_TEXT = "identify the person in the test photo"
USERS = {
    "investigator": "investigator-1",
    "colleague": "investigator-2",
    "outsider": "investigator-3",
    "admin": "admin-1",
    "ingester": "ingester-1",
}
WATCH_PHOTO = "by_identity/barack_obama/obama1.jpg"  # indexed; the watch is made from it (never stored)
NEW_PHOTO = "by_identity/barack_obama/obama.jpg"  # never in the example gallery: a new photo of him
STRANGER = "lfw-dev/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


@dataclass
class Investigation:
    site: Site
    folder: Path
    data: Path
    page: object
    errors: list[str]

    def role_of(self, who: str) -> str:
        return USERS[who].rsplit("-", 1)[0]

    signed_in: bool = False

    def sign_in(self, who: str) -> None:
        """Sign out whoever is signed in (once the page shows them: a page may still be loading), then in."""
        if self.signed_in:
            self.page.get_by_role("button", name="Sign out").click()
            self.page.get_by_label("API key").wait_for()
        sign_in(self.page, self.site, who, as_role=self.role_of(who))
        self.signed_in = True

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.site.keys[who]}"}

    def alerts(self, who: str) -> dict:
        response = httpx.get(f"{self.site.url}/v1/alerts", headers=self.headers(who))
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def investigation(
    request: pytest.FixtureRequest,
    browser,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    shared_data: Path,
    example_gallery: Path,
) -> Iterator[Investigation]:
    examples = shared_data / "face_recognition_examples"
    folder = copy_library(example_gallery, tmp_path_factory.mktemp("investigation") / "lib")
    keys = {}
    with Library.open(folder) as lib:
        assert lib.remove(source=str(examples / PROBE)).sources == [str(examples / PROBE)]
        for who, name in USERS.items():
            _, keys[who] = add_user(lib.catalog, name, name.rsplit("-", 1)[0])
    app = create_app(folder, rate_limit_per_minute=0, ingest_workers=1)
    mount_web(app, "/v1")
    width, height = SIZES[request.param]
    with serving(app) as url:
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Errors the page logs; not the browser's note of a refused request (the test provokes one refusal and
        # checks how it is shown).
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        yield Investigation(Site(url, keys, examples), folder, shared_data, page, errors)
        context.close()
    assert not errors, f"the browser logged errors: {errors}"


def test_an_investigation_from_case_to_report_and_alert(investigation: Investigation, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    inv, page = investigation, investigation.page
    main = page.locator("main")

    # 1. The investigator opens a case with a colleague, searches in it and confirms a lead.
    inv.sign_in("investigator")
    page.get_by_role("link", name="Cases", exact=True).click()
    form = page.get_by_role("form", name="Create a case")
    form.get_by_label("Case ID").fill(CASE)
    form.get_by_label("Case purpose").fill(PURPOSE_TEXT)
    form.get_by_label("Users working it").fill(USERS["colleague"])
    form.get_by_role("button", name="Create case").click()
    expect(page.get_by_role("status")).to_contain_text(f"Case {CASE} created")
    assert_fits(page, "case list")
    page.locator("tbody tr").filter(has_text=CASE).get_by_role("link", name=CASE).click()
    expect(page.get_by_role("heading", name=f"Case {CASE}")).to_be_visible()
    watches = page.locator(".case-watches")
    expect(watches).to_contain_text("No watch in this case.")  # the empty state says what to do next
    expect(watches.get_by_label("Photos of the person")).to_be_visible()
    expect(watches.get_by_label("Webhook (optional)")).to_have_count(0)  # an admin's to set
    assert_fits(page, "new case page")
    page.get_by_role("link", name="Search in this case").click()
    expect(page.get_by_label("Case", exact=True)).to_have_value(CASE)
    page.locator("#probe-file").set_input_files(str(inv.site.examples / PROBE))
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator(".candidate").first
    face_id = first.get_attribute("data-face-id")
    assert_fits(page, "results")
    first.get_by_role("button", name="Compare & review").click()
    dialog = page.locator("dialog.compare")
    dialog.get_by_label("Your decision").select_option("confirmed lead")
    dialog.get_by_label("Note (kept on the server and in the audit log)").fill("same mole under the left eye")
    dialog.get_by_role("button", name="Record decision").click()
    expect(dialog.locator(".review-done")).to_contain_text("confirmed lead, awaiting a second review")
    assert_fits(page, "decision in the compare view")
    dialog.get_by_role("button", name="Close").click()

    # 2. The colleague confirms it blind: probe crop and candidate shown, the first decision not.
    inv.sign_in("colleague")
    page.get_by_role("link", name="Cases", exact=True).click()
    page.locator("tbody tr").filter(has_text=CASE).locator("a.waiting").click()
    task = page.locator(f'.second-reviews .task[data-face-id="{face_id}"]')
    expect(task.locator("img.task-probe")).to_have_attribute("src", re.compile("^blob:"))
    expect(task.locator("img.task-thumb")).to_have_attribute("src", re.compile("^blob:"))
    expect(task.locator("figcaption")).to_have_text(["Probe", "Candidate"])
    expect(main).not_to_contain_text("same mole")
    expect(main).not_to_contain_text(USERS["investigator"] + " ·")
    expect(page.locator(".decided-item").first).to_contain_text("decision hidden until the second review")
    expect(page.locator("img.probe-thumb").first).to_have_attribute("src", re.compile("^blob:"))  # searches table
    assert_fits(page, "blind second review")
    task.get_by_label("Your decision").select_option("confirmed lead")
    task.get_by_role("button", name="Record my review").click()
    done = page.locator(f'.decided-item[data-face-id="{face_id}"]').first
    expect(done).to_have_attribute("data-status", "confirmed")
    expect(done).to_contain_text(f"Second review: confirmed lead by {USERS['colleague']}")
    # The page was drawn twice and shows the probe's crop in two places: one audited look, not one per drawing.
    expect(page.locator("img.probe-thumb").first).to_have_attribute("src", re.compile("^blob:"))
    looks = httpx.get(f"{inv.site.url}/v1/audit", params={"action": "probe_view"}, headers=inv.headers("admin")).json()[
        "entries"
    ]
    assert [e["details"]["face"] for e in looks if e["actor"] == USERS["colleague"]] == [0], looks

    # 3. The report downloads; the CLI and the page accept it, and refuse it with one byte changed.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download report (HTML)").click()
    download = download_info.value
    assert re.fullmatch(r"case-2026-0042-report-\d+\.html", download.suggested_filename), download.suggested_filename
    report = tmp_path / download.suggested_filename
    download.save_as(report)
    data = report.read_bytes()
    expect(page.locator(".report-sha")).to_have_text(hashlib.sha256(data).hexdigest())
    assert b"same mole under the left eye" in data and b"<script" not in data
    assert_fits(page, "report downloaded")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download report (JSON)").click()
    as_json = json.loads(Path(download_info.value.path()).read_bytes())
    assert [(c["face_id"], c["status"]) for c in as_json["candidates"]] == [(int(face_id), "confirmed")]
    expect(page.locator(".report-saved")).to_contain_text("The JSON report was saved")
    accepted = run_cli("case", "verify-report", str(report), "-l", str(inv.folder))
    assert accepted.exit_code == 0, accepted.output
    assert CASE in accepted.stdout
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x01
    forged = tmp_path / "forged.html"
    forged.write_bytes(bytes(changed))
    refused = run_cli("case", "verify-report", str(forged), "-l", str(inv.folder))
    assert refused.exit_code == 1, refused.output
    check = page.get_by_role("form", name="Check a report")
    check.get_by_label("Report file (HTML or JSON)").set_input_files(str(report))
    check.get_by_role("button", name="Check report").click()
    expect(check.locator(".verdict-valid")).to_contain_text(f"Valid: the html report of case {CASE}")
    check.get_by_label("Report file (HTML or JSON)").set_input_files(str(forged))
    check.get_by_role("button", name="Check report").click()
    expect(check.locator(".verdict-invalid")).to_contain_text("Not valid:")
    expect(check.locator(".verdict")).to_be_focused()  # the verdict is where the user looks
    assert_fits(page, "report checked")

    # 4. An admin's watch; a stranger's photo raises nothing, a new photo of the watched man one alert.
    inv.sign_in("admin")
    page.goto(f"{inv.site.url}/#/case/{CASE}")
    watches = page.locator(".case-watches")
    add = watches.get_by_role("form", name="Add a watch")
    # A photo with no face: refused, the error in view and focused, nothing added.
    add.get_by_label("Photos of the person").set_input_files(str(drawn_photo(tmp_path / "shapes.jpg")))
    add.get_by_role("button", name="Add watch").click()
    expect(page.locator("#error")).to_be_focused()
    expect(page.locator("#error")).to_contain_text("face")
    expect(watches).to_contain_text("No watch in this case.")
    add.get_by_label("Photos of the person").set_input_files(str(inv.site.examples / WATCH_PHOTO))
    add.get_by_label("Label").fill("suspect one")
    expect(add.get_by_label("Webhook (optional)")).to_be_visible()
    add.get_by_role("button", name="Add watch").click()
    expect(watches.get_by_role("status")).to_contain_text("Watching for suspect one until")
    expect(watches.locator("tbody tr").filter(has_text="suspect one").locator(".watch-status")).to_have_text("active")
    assert_fits(page, "watch added")

    inv.sign_in("ingester")
    expect(page.locator("#alerts-badge")).to_be_hidden()  # an ingester is never told who is watched for
    for photo, seen in ((inv.data / STRANGER, 0), (inv.site.examples / NEW_PHOTO, 1)):
        page.get_by_label("Photos", exact=True).set_input_files(str(photo))
        page.get_by_label("Collection", exact=True).fill("examples")
        page.get_by_role("button", name="Upload and index").click()
        job = page.locator(".job")
        expect(job).to_have_attribute("data-status", "done", timeout=60_000)
        expect(job).to_contain_text("1 photos indexed, 1 faces")
        assert_fits(page, "photos added")
        assert len(inv.alerts("admin")["alerts"]) == seen, photo.name  # stored, and an alert only for him
        page.reload()

    inv.sign_in("investigator")
    badge = page.locator("#alerts-badge")
    expect(badge).to_have_text("1")
    page.locator('#nav a[href="#/alerts"]').click()
    row = page.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("suspect one")
    expect(row.get_by_role("link", name=CASE)).to_have_attribute("href", f"#/case/{CASE}")
    expect(row.locator(".badge").first).to_have_text("new")
    expect(badge).to_be_hidden()  # opening the page marked it seen
    row.get_by_role("button", name="Show face").click()
    expect(row.locator("img.alert-thumb")).to_have_attribute("src", re.compile("^blob:"))
    assert_fits(page, "alerts")
    assert inv.alerts("investigator")["unseen"] == 0 and inv.alerts("admin")["unseen"] == 1

    inv.sign_in("outsider")  # an investigator outside the case: no badge, no alert
    expect(page.locator("#nav a[href='#/alerts']")).to_be_visible()
    page.locator('#nav a[href="#/alerts"]').click()
    expect(main).to_contain_text("No alert.")
    expect(page.locator("#alerts-badge")).to_be_hidden()
    assert_fits(page, "no alerts")
    assert inv.alerts("outsider")["alerts"] == []

    # The watch is stopped, after a confirmation (cancelled once).
    inv.sign_in("investigator")
    page.goto(f"{inv.site.url}/#/case/{CASE}")
    status = page.locator(".case-watches tbody tr").filter(has_text="suspect one").locator(".watch-status")
    page.get_by_role("button", name="Stop watch suspect one").click()
    confirm = page.locator("dialog.confirm")
    assert_fits(page, "stop-watch confirmation")
    confirm.get_by_role("button", name="Cancel").click()
    expect(status).to_have_text("active")
    page.get_by_role("button", name="Stop watch suspect one").click()
    confirm.get_by_role("button", name="Stop watch").click()
    expect(status).to_have_text("removed")
    assert_fits(page, "case page at the end")
