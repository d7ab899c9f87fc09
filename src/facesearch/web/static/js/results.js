// Candidates as a grid of cards, and the compare dialog where a person reviews one candidate.
// Wording matters here: a "match" only means the score is past this search's operating point (at most
// max_fpir strangers expected as high in the gallery searched), so it is shown as a lead to review,
// never as an identification. "No match" results are collapsed: most likely different people.
import { api } from "./api.js";
import { h } from "./dom.js";
import { showError } from "./notify.js";

let thumbnails = new Map(); // face_id -> blob: URL (each fetch is an audited view: fetch once per search)
const reviewed = new Map(); // face_id -> decision recorded in this tab

export function releaseThumbnails() {
  for (const url of thumbnails.values()) URL.revokeObjectURL(url);
  thumbnails = new Map();
}

// A face view is bound like the search that showed it: its case, purpose and legal basis (state.stated).
async function thumbnail(faceId, caseId, stated) {
  if (!thumbnails.has(faceId)) {
    const query = { case_id: caseId, purpose: stated.purpose };
    if (stated.legal_basis) query.legal_basis = stated.legal_basis;
    thumbnails.set(faceId, api.imageUrl(`/faces/${faceId}/thumbnail`, query));
  }
  return thumbnails.get(faceId);
}

export function fmrText(c) {
  if (c.fmr === null || c.fmr === undefined) return "not calibrated for this model";
  const n = Math.max(1, Math.round(1 / c.fmr)).toLocaleString();
  return `${c.fmr_upper_bound ? "fewer than " : ""}1 in ${n} strangers score this high`;
}

function labelBadge(c) {
  if (c.label === "match") {
    return h("span", { class: "badge strong", title: "Past the operating point for this gallery: still a lead for a person to review" }, "Match · lead to review");
  }
  if (c.label === "possible lead") {
    return h("span", { class: "badge weak", title: "Rare for a stranger in one comparison, but not rare enough for a gallery this size" }, "Possible lead · needs human review");
  }
  return h("span", { class: "badge none" }, "No match · most likely a different person");
}

function operatingPoint(result) {
  if (result.max_fmr === null) {
    return `threshold score ${result.threshold.toFixed(3)} (no calibration for this model: no false match rates, no match possible).`;
  }
  const lead = `possible lead: false match rate at most ${result.max_fmr} (score ≥ ${result.threshold.toFixed(3)})`;
  const match = result.match_threshold === null || result.match_threshold === undefined
    ? "match: not measurable at this gallery size"
    : `match: at most ${result.max_fpir} strangers expected among ${result.gallery_size.toLocaleString()} faces (score ≥ ${result.match_threshold.toFixed(3)})`;
  return `${lead}; ${match}.`;
}

function candidateCard(c, state, caseId) {
  const img = h("img", { alt: `Indexed face ${c.face_id}`, class: "thumb" });
  thumbnail(c.face_id, caseId, state.stated).then((url) => { img.src = url; }).catch(showError);
  const status = h("span", { class: "review-status" }, reviewed.has(c.face_id) ? `Reviewed: ${reviewed.get(c.face_id)}` : "");
  return h("li", { class: "candidate card", "data-face-id": String(c.face_id), "data-label": c.label },
    h("div", { class: "rank" }, `#${c.rank}`),
    img, labelBadge(c), facts(c, state.result), status,
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => compare(state, c, caseId, status) }, "Compare & review")),
  );
}

export function source(image) {
  const parts = [];
  if (image.path) {
    // The end of a path (folder and file) is what tells photos apart; the whole path is in the tooltip.
    const tail = image.path.split(/[\\/]/).slice(-2).join("/");
    parts.push(h("code", { class: "path", "data-path": image.path, title: image.path }, "…/" + tail));
  }
  parts.push(...link(image.source_url, "image source"), ...link(image.page_url, "page"));
  return parts.length ? parts : [h("span", { class: "muted" }, "unknown")];
}

// Only an http(s) URL becomes a link (a "javascript:" or "data:" page URL must never be clickable);
// anything else is shown as inert text. The server cleans URLs too; this does not rely on it.
export function webHref(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function link(url, text) {
  if (!url) return [];
  const href = webHref(url);
  if (href === null) return [h("span", { class: "muted", title: "not a web link: " + url }, text + " (not a web link)")];
  return [h("a", { href, target: "_blank", rel: "noopener noreferrer" }, text)];
}

function facts(c, result) {
  const expected = c.expected_false_candidates;
  return h("dl", { class: "facts" },
    h("dt", {}, "Similarity"), h("dd", { class: "similarity" }, c.similarity.toFixed(3)),
    h("dt", {}, h("abbr", { title: "Calibrated false match rate: how often a different person scores this high" }, "FMR")),
    h("dd", { class: "fmr" }, fmrText(c)),
    expected === null || expected === undefined ? null : [
      h("dt", {}, "Expected"),
      h("dd", {}, `≈ ${expected < 0.01 ? expected.toExponential(1) : expected.toFixed(2)} strangers this high among ${result.gallery_size.toLocaleString()} faces`),
    ],
    h("dt", {}, "Collection"), h("dd", {}, c.collection),
    h("dt", {}, "Source"), h("dd", { class: "source" }, source(c.image)),
  );
}

export function renderResults(container, state, caseId) {
  const result = state.result;
  container.replaceChildren();
  if (!result.faces.length) {
    container.append(h("p", { class: "card" }, "No face was found in this photo. Try a sharper, front-facing photo."));
    return;
  }
  const face = result.faces[state.face];
  const header = h("div", { class: "results-head" },
    h("h2", {}, result.faces.length > 1 ? `Candidates for face ${state.face + 1}` : "Candidates"),
    h("p", { class: "muted" },
      `Case ${result.case_id} · audit entry #${result.audit_sequence ?? "–"} · operating point: ${operatingPoint(result)}`),
    result.match_unavailable ? h("p", { class: "notice match-unavailable", role: "note" }, `No result can be a match: ${result.match_unavailable}`) : null,
    result.calibration_warning ? h("p", { class: "notice warning", role: "alert" }, `Calibration warning: ${result.calibration_warning}`) : null,
  );
  container.append(header);
  if (!face.candidates.length) {
    container.append(h("p", { class: "card" }, "No candidates for this face."));
    return;
  }
  // Leads first; those below the lead threshold are folded away (loading their thumbnails is an audited view,
  // so they are fetched only when the operator opens the fold).
  const above = face.candidates.filter((c) => c.label !== "no match");
  const below = face.candidates.filter((c) => c.label === "no match");
  if (above.length) {
    const grid = h("ol", { class: "grid", "aria-label": "Candidates, most similar first" });
    for (const c of above) grid.append(candidateCard(c, state, caseId));
    container.append(grid);
  } else {
    container.append(h("p", { class: "card" }, "No candidate reached the operating point."));
  }
  if (below.length) {
    const fold = h("details", { class: "below-threshold" },
      h("summary", {}, `below threshold: most likely different people (${below.length})`));
    fold.addEventListener("toggle", () => {
      if (!fold.open || fold.querySelector("ol")) return;
      const grid = h("ol", { class: "grid", "aria-label": "Candidates below the threshold, most similar first" });
      for (const c of below) grid.append(candidateCard(c, state, caseId));
      fold.append(grid);
    });
    container.append(fold);
  }
}

function probeCrop(state) {
  // Cut the chosen face (with a margin) out of the local probe: nothing is sent to the server for this.
  const source = document.querySelector(".preview img");
  const [left, top, width, height] = state.result.faces[state.face].box;
  const [w, h0] = state.result.probe_size;
  const sx = source.naturalWidth / w;
  const sy = source.naturalHeight / h0;
  const margin = 0.3 * Math.max(width, height);
  const x = Math.max(0, left - margin);
  const y = Math.max(0, top - margin);
  const cw = Math.min(w - x, width + 2 * margin);
  const ch = Math.min(h0 - y, height + 2 * margin);
  const canvas = h("canvas", { width: "240", height: String(Math.round((240 * ch) / cw)), role: "img", "aria-label": "The probe face" });
  canvas.getContext("2d").drawImage(source, x * sx, y * sy, cw * sx, ch * sy, 0, 0, canvas.width, canvas.height);
  return canvas;
}

function compare(state, c, caseId, status) {
  const candidate = h("img", { alt: `Indexed face ${c.face_id}`, class: "thumb large" });
  thumbnail(c.face_id, caseId, state.stated).then((url) => { candidate.src = url; }).catch(showError);
  const decision = h("select", { id: "review-decision", name: "decision" },
    h("option", { value: "inconclusive" }, "Inconclusive"),
    h("option", { value: "rejected" }, "Rejected: not the same person"),
    h("option", { value: "confirmed" }, "Confirmed: same person, after my review"));
  const note = h("textarea", { id: "review-note", name: "note", rows: "2", maxlength: "1000" });
  const done = h("p", { class: "review-done", role: "status" });
  const button = h("button", { type: "submit", class: "primary" }, "Mark reviewed");
  const form = h("form", { class: "review" },
    h("div", { class: "field" }, h("label", { for: "review-decision" }, "Your decision"), decision),
    h("div", { class: "field" }, h("label", { for: "review-note" }, "Note (kept in the audit log, which is never erased)"), note),
    button, done);
  const dialog = h("dialog", { class: "compare", "aria-labelledby": "compare-title" },
    h("div", { class: "compare-head" },
      h("h2", { id: "compare-title" }, `Compare: probe and candidate #${c.rank}`),
      h("button", { type: "button", class: "link", onclick: () => dialog.close() }, "Close")),
    h("div", { class: "side-by-side" },
      h("figure", {}, probeCrop(state), h("figcaption", {}, "Probe")),
      h("figure", {}, candidate, h("figcaption", {}, `Indexed face ${c.face_id}`))),
    labelBadge(c), facts(c, state.result), form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      const review = await api.post("/reviews", { case_id: caseId, face_id: c.face_id, decision: decision.value, note: note.value });
      reviewed.set(c.face_id, review.decision);
      status.textContent = `Reviewed: ${review.decision}`;
      done.textContent = `Recorded in the audit log as entry #${review.audit_sequence}.`;
    } catch (error) {
      button.disabled = false;
      done.textContent = error.message;
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
