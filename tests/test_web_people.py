"""Issue 14: the People page of the web app, in Chromium at 1280x800 and at 390x844 (no sideways scrolling).

One library of the example portraits and one live server per width, shared by the steps: an investigator
groups the archive from the web (after a confirmation that says it is biometric processing of everyone),
names a person (kept after a reload), marks a face "not this person", hides and unhides one, merges two (the
dry-run plan in the confirmation, the counts adding up), splits a face out into a new person (merging it back is
refused, the error shown focused); Barack Obama opts out (through the API), the archive is grouped again (API) and
the split, the merge, the mark and the name hold, no person of him is in the grid or the CSV export, and each face
thumbnail (an audited view) was fetched once. An ingester has no People entry and is refused by the API; a user
with no open case is told what to do. Same browser as tests/test_web.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from facesearch import Library
from facesearch.api import create_app
from facesearch.governance import add_user
from facesearch.governance.cases import create_case
from facesearch.web import mount_web
from facesearch.web.background import serving
from tests.helpers import copy_library
from tests.test_web import TIMEOUT_MS, Site, sign_in  # noqa: F401 (fixtures)
from tests.test_web_mobile import SIZES, assert_fits

CASE = "2026-0099"
STATED = {"case_id": CASE, "purpose": "who is in the archive of the club"}
OBAMA = "barack_obama"


@dataclass
class People:
    """A served library for one width; the API as the investigator sees it (to check what the page did)."""

    site: Site
    width: int
    height: int
    data: Path

    def api(self, method: str, path: str, who: str = "investigator", **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.site.keys[who]}"}
        return httpx.request(method, f"{self.site.url}/v1{path}", headers=headers, timeout=60, **kwargs)

    def persons(self) -> dict[int, dict]:
        """Every person (hidden ones too) with its faces, by id."""
        listed = self.api("GET", "/people", params={**STATED, "include_hidden": "true"})
        assert listed.status_code == 200, listed.text
        shown = {}
        for p in listed.json()["persons"]:
            one = self.api("GET", f"/people/{p['id']}", params=STATED)
            assert one.status_code == 200, one.text
            shown[p["id"]] = one.json()
        return shown


def identity(path: str) -> str:
    """The person a photo shows, from its folder (face_recognition_examples/by_identity/<who>/...)."""
    parts = Path(path).parts
    return parts[parts.index("by_identity") + 1] if "by_identity" in parts else "group"


def persons_of(shown: dict[int, dict], who: str) -> set[int]:
    """The persons of ``shown`` (``People.persons()``: one audited request per person, so asked once per state)
    with a face of ``who``."""
    return {i for i, p in shown.items() if any(identity(f["image_path"]) == who for f in p["faces"])}


@pytest.fixture(scope="module", params=list(SIZES), ids=list(SIZES))
def people(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shared_data: Path, example_gallery: Path
) -> Iterator[People]:
    folder = copy_library(example_gallery, tmp_path_factory.mktemp("people") / "lib")
    keys = {}
    with Library.open(folder) as lib:
        for role in ("investigator", "admin", "ingester"):
            _, keys[role] = add_user(lib.catalog, f"{role}-1", role)
        _, keys["investigator-2"] = add_user(lib.catalog, "investigator-2", "investigator")  # works no case
        create_case(lib.catalog, CASE, STATED["purpose"], users=["investigator-1"])
    app = create_app(folder, rate_limit_per_minute=0, ingest_workers=1)
    mount_web(app, "/v1")
    width, height = SIZES[request.param]
    with serving(app) as url:
        yield People(Site(url, keys, shared_data / "face_recognition_examples"), width, height, shared_data)


@pytest.fixture
def screen(browser, people: People):  # noqa: F811
    context = browser.new_context(viewport={"width": people.width, "height": people.height}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"the page threw: {errors}"


def card(screen, person: int):  # noqa: ANN201 (a Playwright locator)
    return screen.locator(f'.people-grid .person-card[data-person-id="{person}"]')


def test_people_from_grouping_to_corrections_that_hold_and_an_opt_out(screen, people: People) -> None:
    """Issue 14 ("Done when": Chromium tests of the People page: merge, split, name, hide; an opted-out person never
    appears; a manual split survives a re-cluster), at both widths, every page and dialog without sideways scrolling."""
    from playwright.sync_api import expect

    sign_in(screen, people.site, "investigator")
    screen.get_by_role("link", name="People", exact=True).click()
    expect(screen.get_by_label("Case", exact=True)).to_have_value(CASE)
    expect(screen.locator(".people-page")).to_contain_text("No persons yet.")
    assert_fits(screen, "people, never grouped")

    # Grouping asks first, saying what it is; cancelled, nothing is grouped.
    screen.get_by_role("button", name="Group faces into people").click()
    confirm = screen.locator("dialog.confirm")
    expect(confirm).to_contain_text("biometric processing of everyone in it")
    assert_fits(screen, "grouping confirmation")
    confirm.get_by_role("button", name="Cancel").click()
    assert people.persons() == {}
    screen.get_by_role("button", name="Group faces into people").click()
    confirm.get_by_role("button", name="Group faces").click()
    expect(screen.get_by_role("status")).to_contain_text(re.compile(r"\d+ faces grouped into \d+ persons"))
    found = people.persons()
    expect(screen.locator(".people-grid .person-card")).to_have_count(len(found))
    expect(screen.locator(".people-grid img").first).to_have_attribute("src", re.compile("^blob:"))
    assert_fits(screen, "people grid")

    (kit,) = persons_of(found, "kit_harington")
    (rose,) = persons_of(found, "rose_leslie")
    (biden,) = persons_of(found, "joe_biden")
    obama = persons_of(found, OBAMA)
    assert obama

    # Name: kept on the server (a reload shows it, on the page and in the grid).
    card(screen, kit).get_by_role("link").click()
    expect(screen.locator("#person-title")).to_have_text(f"Person {kit} (unnamed)")
    assert_fits(screen, "person page")
    screen.get_by_label("Name", exact=True).fill("Kit H.")
    screen.get_by_role("button", name="Save name").click()
    expect(screen.get_by_role("status")).to_contain_text("Named “Kit H.”")
    screen.reload()
    expect(screen.locator("#person-title")).to_have_text(f"Person {kit}: Kit H.")
    # From here on (no reload) each face thumbnail, an audited face view, is fetched once, however often it is drawn.
    thumbnails: list[str] = []
    screen.on("request", lambda r: thumbnails.append(r.url.split("?")[0]) if "/thumbnail" in r.url else None)

    # "Not this person": the face leaves the person (asked first) and is never put back there.
    assert found[kit]["face_count"] >= 2
    stranger = found[kit]["faces"][-1]["face_id"]
    screen.get_by_role("button", name=f"Face {stranger} is not this person").click()
    expect(confirm).to_contain_text("no later grouping puts it back here")
    confirm.get_by_role("button", name="Not this person").click()
    expect(screen.get_by_role("status")).to_contain_text(f"Face {stranger} was taken out of this person.")
    expect(screen.locator(".face-card")).to_have_count(found[kit]["face_count"] - 1)

    # Hide: gone from the grid until "Show hidden persons"; unhidden, back.
    screen.get_by_role("button", name="Hide", exact=True).click()
    expect(screen.get_by_role("status")).to_contain_text("hidden from the grid")
    screen.get_by_role("link", name="← All people").click()
    # (one person more: the stranger's face is a person of its own; one fewer: Kit's, hidden)
    expect(screen.locator(".people-grid .person-card")).to_have_count(len(found))
    expect(card(screen, kit)).to_have_count(0)
    screen.get_by_label(re.compile(r"Show hidden persons \(1\)")).check()
    expect(card(screen, kit)).to_have_attribute("data-hidden", "true")
    expect(card(screen, kit)).to_contain_text("Kit H.")
    assert_fits(screen, "grid with hidden persons")
    card(screen, kit).get_by_role("link").click()
    screen.get_by_role("button", name="Unhide").click()
    expect(screen.get_by_role("status")).to_contain_text("shown again")
    screen.get_by_role("link", name="← All people").click()
    expect(card(screen, kit)).to_have_attribute("data-hidden", "false")

    # Merge: the confirmation shows the dry run's plan; the counts add up; the merged person is gone.
    card(screen, rose).get_by_role("link").click()
    screen.get_by_label("Merge with").select_option(str(biden))
    screen.get_by_role("button", name="Merge…").click()
    total = found[rose]["face_count"] + found[biden]["face_count"]
    expect(confirm).to_contain_text(f"Person {biden} (unnamed) and its {found[biden]['face_count']} face")
    expect(confirm).to_contain_text(f"which will then hold {total} faces")
    assert_fits(screen, "merge confirmation")
    assert people.api("GET", f"/people/{biden}", params=STATED).status_code == 200  # the plan changed nothing
    confirm.get_by_role("button", name="Merge", exact=True).click()
    expect(screen.get_by_role("status")).to_contain_text(f"Person {biden} was merged into this one")
    expect(screen.locator(".person-facts")).to_contain_text(f"{total} faces")
    expect(screen.locator(".face-card")).to_have_count(total)
    after = people.persons()
    assert biden not in after and after[rose]["face_count"] == total
    screen.goto(f"{people.site.url}/#/person/{biden}")  # an old link to the merged person
    expect(screen.locator(".person-page.gone")).to_contain_text(f"There is no person {biden}.")
    screen.get_by_role("link", name="← All people").click()
    expect(card(screen, biden)).to_have_count(0)
    card(screen, rose).get_by_role("link").click()

    # Split: select a face (one of Joe Biden's, merged in above), move it to a new person (confirmed first).
    moved = found[biden]["faces"][0]["face_id"]
    move = screen.get_by_role("button", name="Move to a new person…")
    expect(move).to_be_disabled()
    screen.get_by_label(f"Select face {moved}").check()
    move.click()
    expect(confirm).to_contain_text(f"1 face leave person {rose} for a new person; {total - 1} stay")
    assert_fits(screen, "split confirmation")
    confirm.get_by_role("button", name="Move faces").click()
    expect(screen.get_by_role("status")).to_contain_text("Moved to person")
    expect(screen.locator(f'.face-card[data-face-id="{moved}"]')).to_have_count(0)
    screen.get_by_role("status").get_by_role("link", name="Open it").click()
    expect(screen.locator(f'.face-card[data-face-id="{moved}"]')).to_have_count(1)
    split_off = int(re.search(r"#/person/(\d+)", screen.url).group(1))
    assert split_off != rose
    assert_fits(screen, "split-off person")
    # Merging it back is refused (the split keeps them apart): the error is shown where the user looks, focused.
    screen.get_by_label("Merge with").select_option(str(rose))
    screen.get_by_role("button", name="Merge…").click()
    expect(screen.locator("#error")).to_be_focused()
    expect(screen.locator("#error")).to_contain_text("split apart by a correction")
    expect(confirm).to_have_count(0)
    assert_fits(screen, "refused merge")

    # Barack Obama opts out (an admin, through the API); the archive is grouped again (API): the split, the merge
    # (less the face split off) and the name hold, and no person of him is in the grid.
    photo = (people.data / "face_recognition_examples/by_identity/barack_obama/obama3.jpg").read_bytes()
    optout = people.api("POST", "/optouts", "admin", files={"photo": ("p.jpg", photo, "image/jpeg")})
    assert optout.status_code in (200, 201), optout.text
    again = people.api("POST", "/people/cluster", json=STATED)
    assert again.status_code == 200, again.text
    held = people.persons()
    assert [f["face_id"] for f in held[split_off]["faces"]] == [moved]
    assert moved not in {f["face_id"] for f in held[rose]["faces"]}
    assert held[rose]["face_count"] == total - 1 and held[kit]["name"] == "Kit H."
    assert stranger not in {f["face_id"] for f in held[kit]["faces"]}
    assert not persons_of(held, OBAMA)
    screen.get_by_role("link", name="People", exact=True).click()
    screen.get_by_label(re.compile(r"Show hidden persons")).check()
    expect(screen.locator(".people-grid .person-card")).to_have_count(len(held))
    for gone in obama:
        expect(card(screen, gone)).to_have_count(0)
    expect(card(screen, kit)).to_contain_text("Kit H.")
    expect(screen.locator(".people-grid img[src^='blob:']")).to_have_count(len(held))
    assert_fits(screen, "grid after re-grouping")
    with screen.expect_download() as download:
        screen.get_by_role("button", name="Export CSV").click()
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0] == "face_id,image_path,person_id" and len(rows) > 1
    assert not [r for r in rows if f"/{OBAMA}/" in r]
    assert [r.split(",")[-1] for r in rows if r.startswith(f"{moved},")] == [str(split_off)]
    card(screen, rose).get_by_role("link").click()
    expect(screen.locator(".face-card img[src^='blob:']")).to_have_count(total - 1)
    assert_fits(screen, "merged person's faces")
    assert thumbnails and len(thumbnails) == len(set(thumbnails)), f"a face was fetched twice: {thumbnails}"


def test_an_ingester_has_no_people_page_and_is_refused_by_the_api(screen, people: People) -> None:
    """Issue 14: people are for the roles allowed to see them (admins, investigators): an ingester's navigation has
    no People entry, #/people sends them to their own page, and the API refuses them (403)."""
    from playwright.sync_api import expect

    sign_in(screen, people.site, "ingester")
    expect(screen.get_by_role("link", name="Add photos")).to_be_visible()
    expect(screen.get_by_role("link", name="People", exact=True)).to_be_hidden()
    screen.goto(f"{people.site.url}/#/people")
    expect(screen).to_have_url(re.compile("#/ingest$"))
    assert_fits(screen, "ingester's page")
    refused = people.api("GET", "/people", "ingester", params=STATED)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")


def test_without_an_open_case_the_people_page_says_what_to_do(screen, people: People) -> None:
    """Issue 14: grouping is done for a case; an investigator with no open case is told so (nothing is grouped or
    shown, no button to group) and pointed to the cases page."""
    from playwright.sync_api import expect

    sign_in(screen, people.site, "investigator-2", as_role="investigator")
    screen.get_by_role("link", name="People", exact=True).click()
    expect(screen.locator(".no-case")).to_contain_text("You have no open case.")
    expect(screen.get_by_role("button", name="Group faces into people")).to_have_count(0)
    expect(screen.locator(".people-grid")).to_have_count(0)
    assert_fits(screen, "people without a case")
    screen.locator(".no-case").get_by_role("link", name="Go to cases").click()
    expect(screen.get_by_role("heading", name="Cases", exact=True)).to_be_visible()
