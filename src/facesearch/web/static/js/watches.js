// Issue 13: a case's watches (on the case page) and the alerts they raise (a badge in the navigation and
// the alerts page). A watch looks for one person, from one or more photos, until an expiry date (required):
// every later ingest that stores a face of them raises an alert, shown only to the case's users and admins
// (the server decides: GET /v1/alerts lists only the cases the user may watch). A webhook is an admin's to set.
import { api } from "./api.js";
import { h, field, table, when, emptyState } from "./dom.js";
import { showError } from "./notify.js";
import { confirmAction } from "./confirm.js";
import { caseHref } from "./cases.js";
import { fmrText } from "./results.js";

function isoDay(days) {
  const day = new Date(Date.now() + days * 86_400_000);
  return day.toISOString().slice(0, 10);
}

/** The watches section of a case page: list (label, expiry, status), add, remove (after a confirmation). */
export async function watchesSection(c, me) {
  const section = h("section", { class: "card wide case-watches", "aria-labelledby": "case-watches-title" });
  const path = `/cases/${encodeURIComponent(c.case_id)}/watches`;
  const shown = h("div", { "aria-live": "polite" });
  const list = h("div", {});
  const isOpen = c.status === "open";

  async function remove(w) {
    const ok = await confirmAction({ title: `Stop watch ${w.label || "#" + w.id}?`, action: "Stop watch",
      text: "New photos of this person will no longer raise alerts. Its record and its alerts stay." });
    if (ok === null) return;
    try {
      await api.del(`/watches/${w.id}`);
      shown.replaceChildren(h("p", { class: "banner ok", role: "status" }, `Watch ${w.label || "#" + w.id} was stopped.`));
      await load();
    } catch (error) { showError(error); }
  }

  async function load() {
    const watches = (await api.get(path)).watches;
    list.replaceChildren(table([
      ["Label", (w) => w.label || `watch #${w.id}`],
      ["Until", (w) => w.expires_at.slice(0, 10)],
      ["Status", (w) => h("span", { class: "watch-status" }, w.status)],
      ["Photos", (w) => String(w.photos_sha256.length)],
      ["Added", (w) => `${when(w.created_at)} by ${w.created_by}`],
      ["", (w) => (w.status === "active"
        ? h("button", { type: "button", class: "danger", "aria-label": `Stop watch ${w.label || "#" + w.id}`,
          onclick: () => remove(w) }, "Stop") : "")],
    ], watches, "No watch in this case.", isOpen
      ? "Add one below: photos of the person and the last day to watch; new photos of them will raise alerts."
      : "The case is closed: it watches for nobody."));
  }

  section.append(h("h2", { id: "case-watches-title" }, "Watches"),
    h("p", { class: "muted" }, "Every photo added later is compared with the people watched for; a likely match "
      + "raises an alert for the users of this case."), shown, list);
  if (isOpen) section.append(addForm(path, me, shown, load));
  await load();
  return section;
}

function addForm(path, me, shown, reload) {
  const photos = h("input", { type: "file", name: "photo", multiple: true, required: true, accept: "image/jpeg,image/png,image/webp" });
  const expires = h("input", { type: "date", name: "expires", required: true, value: isoDay(30), min: isoDay(0), max: isoDay(366) });
  const label = h("input", { name: "label", maxlength: "200", autocomplete: "off", placeholder: "e.g. the man in the CCTV still" });
  const webhook = me.role === "admin" ? h("input", { type: "url", name: "webhook", maxlength: "2000", autocomplete: "off" }) : null;
  const form = h("form", { class: "add-watch", "aria-label": "Add a watch" },
    h("h3", {}, "Add a watch"),
    field("Photos of the person", photos, "One or more photos; the largest face of each is used. They are not stored."),
    field("Watch until (last day)", expires, "At most a year ahead: a watch must be renewed by someone who still needs it."),
    field("Label", label),
    webhook ? field("Webhook (optional)", webhook, "An http(s) address that is sent each alert.") : null,
    h("button", { type: "submit", class: "primary" }, "Add watch"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = new FormData();
    for (const file of photos.files) body.append("photo", file);
    body.append("expires", expires.value);
    if (label.value.trim()) body.append("label", label.value.trim());
    if (webhook && webhook.value.trim()) body.append("webhook", webhook.value.trim());
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const watch = await api.post(path, body);
      shown.replaceChildren(h("p", { class: "banner ok", role: "status" },
        `Watching for ${watch.label || "watch #" + watch.id} until ${watch.expires_at.slice(0, 10)}.`));
      form.reset();
      expires.value = isoDay(30);
      await reload();
    } catch (error) { showError(error); } finally { submit.disabled = false; }
  });
  return form;
}

let badgeAsked = 0; // only the latest refresh of the badge may set it (an older answer may arrive later)

/** The navigation's badge: how many alerts the user has not seen (hidden at none). */
export async function refreshAlertBadge(me) {
  const badge = document.getElementById("alerts-badge");
  const asked = ++badgeAsked;
  if (!badge) return;
  if (!me || !me.actions.includes("watch")) { badge.hidden = true; return; }
  try {
    const { unseen } = await api.get("/alerts");
    if (asked !== badgeAsked) return;
    badge.textContent = String(unseen);
    badge.hidden = unseen === 0;
    badge.setAttribute("aria-label", `${unseen} unseen`);
  } catch (_) { badge.hidden = true; /* the page itself shows errors */ }
}

/** The alerts page: every alert of the cases the user may watch, newest first; opening it marks them seen. */
export async function alertsView(main, me) {
  const [{ alerts, last_seen: lastSeen }, { cases }] = await Promise.all([api.get("/alerts"), api.get("/cases")]);
  const byCase = new Map(cases.map((c) => [c.case_id, c]));
  const section = h("section", { class: "card wide", "aria-labelledby": "alerts-title" },
    h("h1", { id: "alerts-title" }, "Alerts"),
    h("p", { class: "muted" }, "A photo added after a watch began that a search for the watched person would show as "
      + "a lead. Review it in its case before acting on it."));
  const showFace = (a) => {
    const c = byCase.get(a.case_id);
    if (!c) return "";
    if (c.status !== "open") return h("span", { class: "muted" }, "case closed: no face views");
    const button = h("button", { type: "button", class: "show-face", onclick: async () => {
      const query = { case_id: c.case_id, purpose: c.purpose };
      if (c.legal_basis) query.legal_basis = c.legal_basis;
      try {
        const url = await api.imageUrl(`/faces/${a.face_id}/thumbnail`, query);
        button.replaceWith(h("img", { src: url, class: "thumb alert-thumb", alt: `Face ${a.face_id} of the alert` }));
      } catch (error) { showError(error); }
    } }, "Show face");
    return button;
  };
  section.append(table([
    ["", (a) => (a.id > lastSeen ? h("span", { class: "badge strong" }, "new") : "")],
    ["Case", (a) => h("a", { href: caseHref(a.case_id) }, a.case_id)],
    ["Watch", (a) => a.watch_label || `watch #${a.watch_id}`],
    ["Label", (a) => h("span", { class: "badge weak" }, a.label)],
    ["False match rate", (a) => (a.fmr === null ? "uncalibrated" : fmrText({ fmr: a.fmr, fmr_upper_bound: false }))],
    ["When", (a) => when(a.at)],
    ["Face", showFace],
  ], alerts, "No alert.", "Watch for a person from a case's page (photos and an expiry date); "
    + "new photos of them will be listed here."));
  main.append(section);
  if (alerts.length && alerts[0].id > lastSeen) {
    await api.post("/alerts/seen", { up_to: alerts[0].id });
    await refreshAlertBadge(me);
  }
}
