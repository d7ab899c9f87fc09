// Issue 13: cases in the web app. The case list (open and closed; create, close), the case page (its
// searches, the candidates decided about and their decisions, a form to decide) and the blind second
// reviews awaiting the signed-in user. Everything is read from and written to the server
// (/v1/cases...), so a reload loses nothing. A second reviewer is shown the probe's fingerprint and
// the candidate, never the first decision: the server hides it, and this page never asks for it.
import { api, key } from "./api.js";
import { h, field, table, when, emptyState } from "./dom.js";
import { showError } from "./notify.js";
import { confirmAction } from "./confirm.js";
import { reportDownloads, reportCheck } from "./reports.js";
import { watchesSection } from "./watches.js";

export const DECISIONS = [
  ["confirmed lead", "Confirmed lead: same person, after my review"],
  ["rejected", "Rejected: not the same person"],
  ["inconclusive", "Inconclusive"],
];
const CHOSEN_CASE = "facesearch.case"; // the case the search page opens with (this tab only)

export const chosenCase = {
  get: () => sessionStorage.getItem(CHOSEN_CASE),
  set: (id) => sessionStorage.setItem(CHOSEN_CASE, id),
};

export function caseHref(id) {
  return "#/case/" + encodeURIComponent(id);
}

/** The open cases the user may search for (the server lists only the cases they may see). */
export async function openCases() {
  return (await api.get("/cases")).cases.filter((c) => c.status === "open");
}

/** A decision select and note: the same controls on the results page, the case page and second reviews. */
export function decisionControls(prefix) {
  const decision = h("select", { id: `${prefix}-decision`, name: "decision", required: true },
    h("option", { value: "" }, "Choose…"), DECISIONS.map(([value, text]) => h("option", { value }, text)));
  const note = h("textarea", { id: `${prefix}-note`, name: "note", rows: "2", maxlength: "1000" });
  return {
    decision,
    note,
    fields: [
      h("div", { class: "field" }, h("label", { for: decision.id }, "Your decision"), decision),
      h("div", { class: "field" }, h("label", { for: note.id }, "Note (kept on the server and in the audit log)"), note),
    ],
  };
}

/** What a candidate's status says, in words (a confirmed lead needs a second reviewer). */
export function statusText(status) {
  return status === "awaiting second review" ? "confirmed lead, awaiting a second review" : status;
}

export async function casesView(main, me) {
  const mayOpen = me.actions.includes("open_case");
  const list = h("div", {});
  const shown = h("div", { "aria-live": "polite" });
  const section = h("section", { class: "card wide", "aria-labelledby": "cases-title" },
    h("h1", { id: "cases-title" }, "Cases"),
    h("p", { class: "muted" }, "Every search belongs to an open case; a closed case accepts no new searches or decisions."));
  if (mayOpen) section.append(createForm(me, shown, () => load()));
  section.append(shown, list);
  main.append(section);

  async function close(c) {
    const ok = await confirmAction({ title: `Close case ${c.case_id}?`, action: "Close case",
      text: `No search, face view or decision may name ${c.case_id} afterwards; this cannot be undone. Its record and audit entries stay.` });
    if (ok === null) return;
    try {
      await api.post(`/cases/${encodeURIComponent(c.case_id)}/close`);
      shown.replaceChildren(h("div", { class: "banner ok", role: "status" }, `Case ${c.case_id} was closed.`));
      await load();
    } catch (error) { showError(error); }
  }

  const columns = [
    ["Case", (c) => h("a", { href: caseHref(c.case_id), class: "case-link" }, c.case_id)],
    ["Purpose", (c) => h("span", { class: "details" }, c.purpose)],
    ["Users", (c) => c.users.join(", ")],
    ["Opened", (c) => `${when(c.created_at)} by ${c.created_by}`],
    ["Status", (c) => (c.status === "open" ? "open" : `closed ${when(c.closed_at)} by ${c.closed_by}`)],
    ["Your second reviews", (c) => (waiting.has(c.case_id)
      ? h("a", { href: caseHref(c.case_id), class: "waiting" }, `${waiting.get(c.case_id)} awaiting you`) : "")],
    ["", (c) => (mayOpen && c.status === "open"
      ? h("button", { type: "button", class: "danger", onclick: () => close(c), "aria-label": `Close case ${c.case_id}` }, "Close")
      : "")],
  ];

  const waiting = new Map(); // case id -> blind second reviews awaiting the signed-in user
  async function load() {
    const cases = (await api.get("/cases")).cases;
    const open = cases.filter((c) => c.status === "open");
    waiting.clear();
    if (me.actions.includes("review")) {
      const counts = await Promise.all(open.map((c) => api.get(`/cases/${encodeURIComponent(c.case_id)}/second-reviews`)
        .then((r) => r.tasks.length)));
      open.forEach((c, i) => { if (counts[i]) waiting.set(c.case_id, counts[i]); });
    }
    const closed = cases.filter((c) => c.status !== "open");
    const next = mayOpen ? "Create one above: give its number, purpose and the colleagues working it."
      : "Ask an investigator or an administrator to add you to a case.";
    list.replaceChildren(
      h("h2", {}, `Open cases (${open.length})`), table(columns, open, "No open case.", next),
      h("h2", { class: "spaced" }, `Closed cases (${closed.length})`), table(columns, closed, "No closed case."));
  }
  await load();
  main.append(reportCheck());
}

function createForm(me, shown, reload) {
  const id = h("input", { name: "case_id", required: true, maxlength: "100", autocomplete: "off", placeholder: "e.g. 2024-0173" });
  const purpose = h("textarea", { name: "purpose", required: true, maxlength: "1000", rows: "2",
    placeholder: "e.g. identify the person in the CCTV still from the 12 May burglary" });
  const legal = h("input", { name: "legal_basis", maxlength: "500", autocomplete: "off" });
  const users = h("input", { name: "users", autocomplete: "off", placeholder: "e.g. analyst-2, analyst-3" });
  const form = h("form", { class: "create-case", "aria-label": "Create a case" },
    h("h2", {}, "Create a case"),
    field("Case ID", id), field("Case purpose", purpose), field("Legal basis", legal),
    field("Users working it", users, `Their user names, separated by commas (you, ${me.name}, are added).`),
    h("button", { type: "submit", class: "primary" }, "Create case"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { case_id: id.value.trim(), purpose: purpose.value.trim(),
      users: users.value.split(",").map((u) => u.trim()).filter(Boolean) };
    if (legal.value.trim()) body.legal_basis = legal.value.trim();
    try {
      const created = await api.post("/cases", body);
      shown.replaceChildren(h("div", { class: "banner ok", role: "status" }, `Case ${created.case_id} created. `,
        h("a", { href: caseHref(created.case_id) }, "Open its page")));
      form.reset();
      await reload();
    } catch (error) { showError(error); }
  });
  return form;
}

function facts(c) {
  return h("dl", { class: "facts case-facts" },
    h("dt", {}, "Status"), h("dd", { class: "case-status" }, c.status),
    h("dt", {}, "Purpose"), h("dd", {}, c.purpose),
    h("dt", {}, "Legal basis"), h("dd", {}, c.legal_basis || "none stated"),
    h("dt", {}, "Users"), h("dd", {}, c.users.join(", ") || "none"),
    h("dt", {}, "Opened"), h("dd", {}, `${when(c.created_at)} by ${c.created_by} (audit #${c.audit_seq})`),
    c.closed_at ? [h("dt", {}, "Closed"), h("dd", {}, `${when(c.closed_at)} by ${c.closed_by}`)] : null);
}

function decisionLine(d) {
  const what = d.decision === null ? "decision hidden until the second review" : d.decision;
  const who = d.reviewer === null ? "" : ` by ${d.reviewer}`;
  return h("li", { "data-stage": d.stage },
    h("strong", {}, d.stage === "second" ? "Second review: " : "Decision: "), what, who, ` · ${when(d.at)} · audit #${d.audit_seq}`,
    d.note ? h("div", { class: "note" }, d.note) : null);
}

export async function caseView(main, me, caseId) {
  const detail = await api.get(`/cases/${encodeURIComponent(caseId)}`);
  const c = detail.case;
  const isOpen = c.status === "open";
  const mayReview = me.actions.includes("review") && isOpen;
  const page = h("section", { class: "card wide case-page", "aria-labelledby": "case-title" },
    h("p", {}, h("a", { href: "#/cases" }, "← All cases")),
    h("h1", { id: "case-title" }, `Case ${c.case_id}`), facts(c));
  if (isOpen && me.actions.includes("search")) {
    page.append(h("p", {}, h("a", { href: "#/search", class: "button-link",
      onclick: () => chosenCase.set(c.case_id) }, "Search in this case")));
  }
  main.append(page);

  const searches = h("section", { class: "card wide", "aria-labelledby": "case-searches" },
    h("h2", { id: "case-searches" }, `Searches (${detail.searches.length})`),
    table([
      ["Audit #", (s) => String(s.audit_sequence)],
      ["When", (s) => when(s.at)],
      ["By", (s) => s.actor],
      ["Probe fingerprint", (s) => h("code", { class: "path", title: s.probe_sha256 || "" }, (s.probe_sha256 || "").slice(0, 16) + "…")],
      ["Candidates shown", (s) => String(s.shown ?? "")],
      ["Probe face", (s) => h("span", { class: "probe-crops" }, (s.probe_faces || []).map((face) =>
        probeCrop(c.case_id, s.audit_sequence, face, "probe-thumb")))],
    ], detail.searches, "No search in this case yet.",
    isOpen ? "Search with a probe photo from the Search page, with this case chosen." : "The case is closed: no new searches."));
  main.append(searches);

  const decided = h("section", { class: "card wide", "aria-labelledby": "case-decisions" },
    h("h2", { id: "case-decisions" }, `Candidates decided about (${detail.decisions.length})`));
  if (!detail.decisions.length) {
    decided.append(emptyState("No decision yet.", isOpen
      ? "Open a search's results and use “Compare & review” on a candidate to record a decision."
      : "The case is closed."));
  }
  const items = h("ul", { class: "decided" });
  for (const cand of detail.decisions) {
    const item = h("li", { class: "decided-item", "data-face-id": String(cand.face_id), "data-status": cand.status },
      h("div", { class: "row" }, h("strong", {}, `Face ${cand.face_id}`),
        h("span", { class: "badge weak decided-status" }, statusText(cand.status))),
      h("p", { class: "muted" }, `Shown by search #${cand.search_seq ?? "–"}`),
      h("ul", { class: "decision-lines" }, cand.decisions.map(decisionLine)));
    if (mayReview) item.append(changeForm(c.case_id, cand, () => rerender()));
    items.append(item);
  }
  if (detail.decisions.length) decided.append(items);
  main.append(decided);

  if (mayReview) main.append(await secondReviews(c, () => rerender()));
  main.append(reportDownloads(c.case_id));
  if (me.actions.includes("watch") && (me.role === "admin" || c.users.includes(me.name))) {
    main.append(await watchesSection(c, me));
  }
  main.append(reportCheck());

  function rerender() {
    main.replaceChildren();
    return caseView(main, me, caseId).catch(showError);
  }
}

function changeForm(caseId, cand, done) {
  const prefix = `decide-${cand.face_id}`;
  const controls = decisionControls(prefix);
  const form = h("form", { class: "review" }, controls.fields, h("button", { type: "submit" }, "Record decision"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post(`/cases/${encodeURIComponent(caseId)}/decisions`, { face_id: cand.face_id,
        decision: controls.decision.value, note: controls.note.value, search_seq: cand.search_seq ?? undefined });
      await done();
    } catch (error) { showError(error); }
  });
  return h("details", { class: "change-decision" }, h("summary", {}, "Record a new decision"), form);
}

// Crops already fetched by this key in this tab: the case page is drawn again after every decision, and
// each fetch is an audited look, so a crop is asked for once per key, not once per redraw. Another key
// (a sign-out, then someone else) starts afresh and is checked by the server again.
const fetchedCrops = { key: null, urls: new Map() };

function cropUrl(path) {
  if (fetchedCrops.key !== key.get()) Object.assign(fetchedCrops, { key: key.get(), urls: new Map() });
  if (!fetchedCrops.urls.has(path)) {
    const pending = api.imageUrl(path);
    pending.catch(() => fetchedCrops.urls.delete(path)); // a failure is asked again next time
    fetchedCrops.urls.set(path, pending);
  }
  return fetchedCrops.urls.get(path);
}

/** The kept crop of a search's probe face (fetched with the key; each look is audited as a view). */
function probeCrop(caseId, seq, face, cls) {
  const img = h("img", { alt: `Probe face ${face} of search #${seq}`, class: `thumb ${cls}` });
  if (face === null || face === undefined) return h("span", { class: "muted" }, "no crop");
  cropUrl(`/cases/${encodeURIComponent(caseId)}/searches/${seq}/probe/${face}`).then((url) => { img.src = url; })
    .catch((error) => img.replaceWith(h("span", { class: "muted" }, error.status === 404 ? "no crop kept" : error.message)));
  return img;
}

// The blind second reviews: the probe's crop, fingerprint and face box beside the candidate's face; no first decision.
async function secondReviews(c, done) {
  const tasks = (await api.get(`/cases/${encodeURIComponent(c.case_id)}/second-reviews`)).tasks;
  const section = h("section", { class: "card wide second-reviews", "aria-labelledby": "second-title" },
    h("h2", { id: "second-title" }, `Second reviews awaiting you (${tasks.length})`),
    h("p", { class: "muted" }, "A colleague proposed each of these candidates as a lead. Decide on your own: "
      + "their decision is not shown to you until you have recorded yours."));
  if (!tasks.length) {
    section.append(emptyState("Nothing to review.", "Leads confirmed by a colleague in this case appear here for your blind review."));
    return section;
  }
  const list = h("ul", { class: "decided" });
  for (const task of tasks) {
    const img = h("img", { alt: `Candidate face ${task.face_id}`, class: "thumb task-thumb" });
    const query = { case_id: c.case_id, purpose: c.purpose };
    if (c.legal_basis) query.legal_basis = c.legal_basis;
    api.imageUrl(`/faces/${task.face_id}/thumbnail`, query).then((url) => { img.src = url; })
      .catch((error) => img.replaceWith(h("p", { class: "muted" }, `The face cannot be shown: ${error.message}`)));
    const controls = decisionControls(`task-${task.task_id}`);
    const form = h("form", { class: "review" }, controls.fields, h("button", { type: "submit", class: "primary" }, "Record my review"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api.post(`/cases/${encodeURIComponent(c.case_id)}/second-reviews/${task.task_id}`,
          { decision: controls.decision.value, note: controls.note.value });
        await done();
      } catch (error) { showError(error); }
    });
    list.append(h("li", { class: "decided-item task", "data-face-id": String(task.face_id) },
      h("div", { class: "task-body" },
        h("figure", { class: "task-face" }, probeCrop(c.case_id, task.search_seq, task.probe_face, "task-probe"),
          h("figcaption", {}, "Probe")),
        h("figure", { class: "task-face" }, img, h("figcaption", {}, "Candidate")), h("dl", { class: "facts" },
        h("dt", {}, "Candidate"), h("dd", {}, `face ${task.face_id}`),
        h("dt", {}, "Probe"), h("dd", {}, h("code", { class: "path-full" }, task.probe_sha256 || "unknown")),
        h("dt", {}, "Probe face box"), h("dd", {}, (task.box || []).join(", ")),
        h("dt", {}, "Search"), h("dd", {}, `audit #${task.search_seq}`))),
      form));
  }
  section.append(list);
  return section;
}
