"""Issue 13: the probe in the web app, at 1280x800 and at 390x844 (no sideways scrolling): more photos of
the same person added to the probe (a strip that can be cleared; sent as several ``probe`` files with
``same_person``), a date range, and "search with this face" from a result (``probe_face_id``), each seen
in the search's audit entry. Same live server and browser as tests/test_web.py.
"""

from __future__ import annotations

from tests.test_web import CASE, PROBE, Site, sign_in, site  # noqa: F401 (fixtures)
from tests.test_web_mobile import assert_fits, screen  # noqa: F401 (fixtures)

SECOND = "by_identity/joe_biden/biden2.jpg"


def last_search(page, site: Site) -> dict:  # noqa: F811
    entries = page.request.get(
        site.url + "/v1/audit",
        params={"action": "search", "case_id": CASE, "limit": 1000},
        headers={"Authorization": f"Bearer {site.keys['auditor']}"},
    ).json()["entries"]
    return max(entries, key=lambda e: e["seq"])["details"]


def search(page) -> None:
    page.get_by_role("button", name="Search", exact=True).click()


def test_photos_added_to_the_probe_are_searched_as_one_person_and_can_be_cleared(screen, site: Site) -> None:  # noqa: F811
    from playwright.sync_api import expect

    sign_in(screen, site, "investigator")
    screen.get_by_label("Case", exact=True).select_option(CASE)
    screen.locator("#probe-file").set_input_files(str(site.examples / PROBE))
    expect(screen.get_by_role("group", name="Probe photos")).to_be_hidden()  # one photo: no strip
    screen.locator("#probe-more").set_input_files(str(site.examples / SECOND))
    strip = screen.get_by_role("group", name="Probe photos")
    expect(strip.locator("img")).to_have_count(2)
    expect(strip).to_contain_text("2 photos of one person")
    assert_fits(screen, "probe strip")
    search(screen)
    expect(screen.locator(".candidate").first).to_be_visible()
    assert len(last_search(screen, site)["probes_sha256"]) == 2
    assert_fits(screen, "fused results")

    strip.get_by_role("button", name="Clear the added photos").click()
    expect(strip).to_be_hidden()
    search(screen)
    expect(screen.locator(".candidate").first).to_be_visible()
    assert len(last_search(screen, site)["probes_sha256"]) == 1


def test_a_date_range_and_search_with_this_face(screen, site: Site) -> None:  # noqa: F811
    from playwright.sync_api import expect

    sign_in(screen, site, "investigator")
    screen.get_by_label("Case", exact=True).select_option(CASE)
    screen.locator("#probe-file").set_input_files(str(site.examples / PROBE))
    search(screen)
    first = screen.locator(".candidate").first
    face_id = first.get_attribute("data-face-id")

    # "Search with this face": the result becomes the probe, searched again and audited by its id.
    first.get_by_role("button", name=f"Search with face {face_id}").click()
    expect(screen.get_by_alt_text(f"The probe: indexed face {face_id}")).to_be_visible()
    expect(screen.locator(".notice.probe-face")).to_contain_text(f"Probe: indexed face {face_id}")
    expect(screen.locator(".candidate").first).to_have_attribute("data-face-id", face_id)  # it finds itself first
    details = last_search(screen, site)
    assert details["probe_face_id"] == int(face_id) and len(details["probe_sha256"]) == 64
    assert_fits(screen, "search with this face")
    screen.locator(".candidate").first.get_by_role("button", name="Compare & review").click()
    expect(screen.locator("dialog.compare").get_by_role("img", name="The probe face")).to_be_visible()
    assert_fits(screen, "compare a face probe")
    screen.locator("dialog.compare").get_by_role("button", name="Close").click()

    # A date range nothing in the gallery was taken in: nothing is compared, and the page says why.
    screen.locator("#probe-file").set_input_files(str(site.examples / PROBE))
    screen.get_by_text("More options").click()
    screen.get_by_label("Taken from").fill("2100-01-01")
    search(screen)
    expect(screen.locator(".notice.date-filter")).to_contain_text("without a date left out")
    expect(screen.locator(".empty")).to_contain_text("widen the range or clear it")
    assert last_search(screen, site)["taken_after"] == "2100-01-01T00:00:00"
    assert_fits(screen, "date range")
