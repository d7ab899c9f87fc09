"""Issue 13: the case workflow in the web app, at 1280x800 and at 390x844 (no sideways scrolling).

An investigator creates a case (naming a colleague), searches in it, records a decision on a candidate
from the results page; the decision lives on the server (still there after a reload, on the case page);
the colleague reviews it blind (the first decision is not shown to them) and the lead becomes
confirmed; the case is closed with a confirmation and the search page no longer offers it. A user with
no open case is told to create one. Same live server and browser as tests/test_web.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_web import PROBE, Site, sign_in, site  # noqa: F401 (fixtures)
from tests.test_web_mobile import assert_fits, screen  # noqa: F401 (fixtures)

PURPOSE_TEXT = "identify the person in the test photo"


def test_a_case_from_creation_to_a_blind_confirmed_lead_and_closing(screen, site: Site) -> None:  # noqa: F811
    from playwright.sync_api import expect

    case = f"case-flow-{screen.viewport_size['width']}"
    sign_in(screen, site, "investigator")
    screen.get_by_role("link", name="Cases", exact=True).click()
    form = screen.get_by_role("form", name="Create a case")
    form.get_by_label("Case ID").fill(case)
    form.get_by_label("Case purpose").fill(PURPOSE_TEXT)
    form.get_by_label("Users working it").fill("investigator-2")
    form.get_by_role("button", name="Create case").click()
    expect(screen.get_by_role("status")).to_contain_text(f"Case {case} created")
    row = screen.locator("tbody tr").filter(has_text=case)
    expect(row).to_contain_text("investigator-1, investigator-2")
    assert_fits(screen, "case list")
    # The same id again: refused, and the error is shown where the user looks (scrolled to, focused).
    form.get_by_label("Case ID").fill(case.upper())
    form.get_by_label("Case purpose").fill(PURPOSE_TEXT)
    form.get_by_role("button", name="Create case").click()
    expect(screen.locator("#error")).to_be_focused()
    expect(screen.locator("#error")).to_contain_text("exists already")
    expect(screen.locator("tbody tr").filter(has_text=case)).to_have_count(1)

    # Search in it: the case is chosen from the open ones and fills the purpose.
    row.get_by_role("link", name=case).click()
    expect(screen.get_by_role("heading", name=f"Case {case}")).to_be_visible()
    expect(screen.get_by_text("No search in this case yet.")).to_be_visible()
    screen.get_by_role("link", name="Search in this case").click()
    expect(screen.get_by_label("Case", exact=True)).to_have_value(case)
    expect(screen.get_by_label("Purpose")).to_have_value(PURPOSE_TEXT)
    screen.locator("#probe-file").set_input_files(str(site.examples / PROBE))
    screen.get_by_role("button", name="Search", exact=True).click()
    first = screen.locator(".candidate").first
    face_id = first.get_attribute("data-face-id")
    first.get_by_role("button", name="Compare & review").click()
    dialog = screen.locator("dialog.compare")
    dialog.get_by_label("Your decision").select_option("confirmed lead")
    dialog.get_by_label("Note (kept on the server and in the audit log)").fill("same scar above the eyebrow")
    dialog.get_by_role("button", name="Record decision").click()
    expect(dialog.locator(".review-done")).to_contain_text("confirmed lead, awaiting a second review")
    assert_fits(screen, "decision in the compare view")
    dialog.get_by_role("button", name="Close").click()

    # Reviews live on the server: after a reload the case page still shows the decision.
    screen.goto(f"{site.url}/#/case/{case}")
    screen.reload()
    item = screen.locator(f'.decided-item[data-face-id="{face_id}"]')
    expect(item).to_have_attribute("data-status", "awaiting second review")
    expect(item).to_contain_text("same scar above the eyebrow")  # its own reviewer sees the note
    expect(screen.locator(".case-page")).not_to_contain_text("No search")
    expect(screen.locator("#case-searches")).to_have_text("Searches (1)")
    shown = screen.locator("section[aria-labelledby=case-searches] tbody tr td").nth(4)  # "Candidates shown"
    expect(shown).to_have_text(re.compile(r"^[1-9][0-9]*$"))
    expect(screen.locator(".second-reviews")).to_contain_text("Nothing to review.")  # not one's own lead
    assert_fits(screen, "case page")

    # The colleague reviews blind: the first decision, its note and reviewer are not on the page.
    screen.get_by_role("button", name="Sign out").click()
    sign_in(screen, site, "investigator-2", as_role="investigator")
    screen.get_by_role("link", name="Cases", exact=True).click()
    waiting = screen.locator("tbody tr").filter(has_text=case).locator("a.waiting")
    expect(waiting).to_have_text("1 awaiting you")  # the case list says where a blind review waits
    waiting.click()
    item = screen.locator(f'.decided-item[data-face-id="{face_id}"]').first
    expect(item).to_contain_text("decision hidden until the second review")
    main = screen.locator("main")
    expect(main).not_to_contain_text("same scar")
    expect(main).not_to_contain_text("by investigator-1 ·")
    task = screen.locator(f'.second-reviews .task[data-face-id="{face_id}"]')
    expect(task.locator("img.task-thumb")).to_have_attribute("src", re.compile("^blob:"))
    assert_fits(screen, "second review")
    task.get_by_label("Your decision").select_option("confirmed lead")
    task.get_by_role("button", name="Record my review").click()
    done = screen.locator(f'.decided-item[data-face-id="{face_id}"]').first
    expect(done).to_have_attribute("data-status", "confirmed")
    expect(done).to_contain_text("Second review: confirmed lead by investigator-2")
    expect(done).to_contain_text("same scar above the eyebrow")  # shown once the second review is in

    # Closing asks first; afterwards the case is listed as closed and cannot be searched.
    screen.get_by_role("link", name="Cases", exact=True).click()
    screen.get_by_role("button", name=f"Close case {case}").click()
    confirm = screen.locator("dialog.confirm")
    assert_fits(screen, "close confirmation")
    confirm.get_by_role("button", name="Cancel").click()
    expect(screen.locator("tbody tr").filter(has_text=case)).to_contain_text("open")
    screen.get_by_role("button", name=f"Close case {case}").click()
    confirm.get_by_role("button", name="Close case").click()
    expect(screen.get_by_role("status")).to_contain_text(f"Case {case} was closed.")
    expect(screen.locator("tbody tr").filter(has_text=case)).to_contain_text("closed")
    screen.get_by_role("link", name="Search", exact=True).click()
    expect(screen.get_by_label("Case", exact=True).locator(f'option[value="{case}"]')).to_have_count(0)


def test_a_user_without_an_open_case_is_told_to_create_one(screen, site: Site) -> None:  # noqa: F811
    from playwright.sync_api import expect

    sign_in(screen, site, "investigator-3", as_role="investigator")
    expect(screen.locator(".no-case")).to_contain_text("You have no open case.")
    expect(screen.get_by_role("button", name="Search", exact=True)).to_be_disabled()
    screen.locator(".no-case").get_by_role("link", name="create a case").click()
    expect(screen.get_by_role("heading", name="Cases", exact=True)).to_be_visible()
    expect(screen.locator(".empty").first).to_contain_text("Create one above")
    assert_fits(screen, "no case")
    # A case page that does not exist (here even a malformed address): an error in view, no script error.
    screen.goto(f"{site.url}/#/case/%E0%A4%A")
    expect(screen.locator("#error")).to_contain_text("no case")
    expect(screen.locator("#error")).to_be_focused()


def test_the_web_app_no_longer_calls_the_per_search_reviews() -> None:
    """Issue 13: reviews were kept in the tab (POST /v1/reviews); the web app now records decisions in the case."""
    static = Path(__file__).resolve().parents[1] / "src/facesearch/web/static/js"
    assert not [p.name for p in static.glob("*.js") if '"/reviews' in p.read_text()]
    assert any("/decisions`" in p.read_text() for p in static.glob("*.js"))


def test_the_per_search_reviews_are_deprecated_in_the_api_document() -> None:
    """Issue 13: /v1/reviews stays for existing clients but says it is deprecated (use the case's decisions)."""
    from facesearch.api.routes.reviews import router

    assert {(tuple(r.methods), r.deprecated) for r in router.routes} == {(("POST",), True), (("GET",), True)}
