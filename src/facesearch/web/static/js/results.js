// Candidates as a grid of cards (one per photo) or a compact list, and the compare dialog where a person
// reviews one candidate beside the whole photo it is in, stepping through candidates with the arrow keys.
// Wording matters here: a "match" only means the score is past this search's operating point (at most
// max_fpir strangers expected as high in the gallery searched), so it is shown as a lead to review,
// never as an identification. "No match" results are collapsed: most likely different people.
import { api } from "./api.js";
import { h, emptyState } from "./dom.js";
import { showError } from "./notify.js";
import { decisionControls, statusText } from "./cases.js";

let thumbnails = new Map(); // face_id -> blob: URL (each fetch is an audited view: fetch once per search)
let photos = new Map(); // face_id -> Promise of {url, box, size, taken}: the whole photo, fetched when compared
const reviewed = new Map(); // face_id -> its status in the case (read from the server, kept in step)
const LAYOUT_KEY = "facesearch.results-layout";

// keep: a URL still shown (the face a "search with this face" uses as its probe).
export function releaseThumbnails(keep = null) {
  for (const url of thumbnails.values()) Promise.resolve(url).then((u) => { if (u !== keep) URL.revokeObjectURL(u); }).catch(() => {});
  for (const shown of photos.values()) shown.then((p) => URL.revokeObjectURL(p.url)).catch(() => {});
  thumbnails = new Map();
  photos = new Map();
}

function viewQuery(caseId, stated) {
  const query = { case_id: caseId, purpose: stated.purpose };
  if (stated.legal_basis) query.legal_basis = stated.legal_basis;
  return query;
}

// The whole photo with the face's box and its EXIF date (GET /faces/{id}/photo, an audited view like the thumbnail).
function wholePhoto(faceId, caseId, stated) {
  if (!photos.has(faceId)) {
    photos.set(faceId, api.image(`/faces/${faceId}/photo`, viewQuery(caseId, stated)).then(({ url, headers }) => ({
      url,
      box: (headers.get("X-Face-Box") || "").split(",").map(Number),
      size: (headers.get("X-Photo-Size") || "").split(",").map(Number),
      taken: headers.get("X-Photo-Taken"),
    })));
  }
  return photos.get(faceId);
}

// Issue 13: one photo with several matching faces is one card. Groups keep the rank order of their best face.
export function groupByPhoto(candidates) {
  const groups = new Map();
  for (const c of candidates) {
    const key = c.image ? c.image.image_id : `face-${c.face_id}`;
    if (!groups.has(key)) groups.set(key, { imageId: key, best: c, faces: [] });
    groups.get(key).faces.push(c);
  }
  return [...groups.values()];
}

// A face view is bound like the search that showed it: its case, purpose and legal basis (state.stated).
async function thumbnail(faceId, caseId, stated) {
  if (!thumbnails.has(faceId)) {
    thumbnails.set(faceId, api.imageUrl(`/faces/${faceId}/thumbnail`, viewQuery(caseId, stated)));
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

function reviewStatus(faceId) {
  return h("span", { class: "review-status", "data-status-of": String(faceId) },
    reviewed.has(faceId) ? `Decided: ${statusText(reviewed.get(faceId))}` : "");
}

function markDecided(faceId, status) {
  reviewed.set(faceId, status);
  for (const el of document.querySelectorAll(`[data-status-of="${faceId}"]`)) el.textContent = `Decided: ${statusText(status)}`;
}

// Issue 13: decisions live on the server; the results page shows each candidate's status in the case.
async function loadDecisions(caseId) {
  reviewed.clear();
  try {
    const data = await api.get(`/cases/${encodeURIComponent(caseId)}/decisions`);
    for (const cand of data.candidates) markDecided(cand.face_id, cand.status);
  } catch (error) {
    if (error.status !== 404) showError(error); // a library without cases has no decisions to show
  }
}

// One card per photo: its best face large, the photo's other candidate faces listed under it.
function faceButton(c, caseId, state, onFace, where) {
  if (!onFace) return null;
  return h("button", { type: "button", class: "use-face", "aria-label": `Search with face ${c.face_id}${where}`,
    onclick: () => thumbnail(c.face_id, caseId, state.stated).then((url) => onFace(c, url)).catch(showError) }, "Search with this face");
}

function candidateCard(group, state, caseId, open, onFace) {
  const c = group.best;
  const img = h("img", { alt: `Indexed face ${c.face_id}`, class: "thumb" });
  thumbnail(c.face_id, caseId, state.stated).then((url) => { img.src = url; }).catch(showError);
  const others = group.faces.slice(1);
  const more = others.length
    ? h("div", { class: "more-faces" }, h("span", { class: "muted" }, `${group.faces.length} faces in this photo`),
      h("ul", {}, others.map((o) => h("li", { "data-face-id": String(o.face_id) },
        h("button", { type: "button", class: "link", onclick: () => open(o) },
          `#${o.rank} · ${o.similarity.toFixed(3)}`), " ", reviewStatus(o.face_id)))))
    : null;
  return h("li", { class: "candidate card", "data-face-id": String(c.face_id), "data-image-id": String(group.imageId),
    "data-label": c.label, "data-collection": c.collection },
  h("div", { class: "rank" }, `#${c.rank}`),
  img, h("div", { class: "summary" }, labelBadge(c), facts(c, state.result), reviewStatus(c.face_id), more),
  h("div", { class: "actions" },
    h("button", { type: "button", onclick: () => open(c) }, "Compare & review"),
    faceButton(c, caseId, state, onFace, "")),
  );
}

function cardList(candidates, state, caseId, open, label, onFace) {
  const grid = h("ol", { class: "grid", "aria-label": label });
  for (const group of groupByPhoto(candidates)) grid.append(candidateCard(group, state, caseId, open, onFace));
  return grid;
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

const MAX_TOP_K = 1000; // the API's bound (search/service.py)

// Issue 13: paging past top-k. A full page may hide more: "show more" runs the search again with a larger
// top_k (a new search, audited as such: the page says so), keeping what is already known of the probe.
function moreButton(state, face, onMore) {
  const topK = state.result.top_k;
  if (!onMore || face.candidates.length < topK || topK >= MAX_TOP_K) return null;
  const next = Math.min(MAX_TOP_K, topK * 2);
  return h("div", { class: "more" },
    h("button", { type: "button", onclick: () => onMore(next) }, `Show up to ${next} candidates`),
    h("span", { class: "help" }, ` Only the ${topK} most similar faces were asked for; more means a new search, audited like this one.`));
}

// Issue 13: what narrowed the search (a date range) and what the probe was (an indexed face), said above the results.
function searchedNotes(result) {
  const notes = [];
  if (result.probe_face_id !== null && result.probe_face_id !== undefined) {
    notes.push(h("p", { class: "notice probe-face" }, `Probe: indexed face ${result.probe_face_id} (searched with its stored template).`));
  }
  if (result.undated_excluded !== null && result.undated_excluded !== undefined) {
    const from = result.taken_after ? new Date(result.taken_after).toLocaleDateString() : "any date";
    const until = result.taken_before ? `before ${new Date(result.taken_before).toLocaleString()}` : "today";
    notes.push(h("p", { class: "notice date-filter" }, `Only photos taken from ${from} to ${until} were searched; `
      + `${result.undated_excluded} face${result.undated_excluded === 1 ? "" : "s"} in photos without a date left out.`));
  }
  return notes;
}

export function renderResults(container, state, caseId, onMore, onFace) {
  const result = state.result;
  container.replaceChildren();
  if (!result.faces.length) {
    container.append(h("p", { class: "card" }, "No face was found in this photo. Try a sharper, front-facing photo."));
    return;
  }
  const face = result.faces[state.face];
  loadDecisions(caseId);
  const header = h("div", { class: "results-head" },
    h("h2", {}, result.faces.length > 1 ? `Candidates for face ${state.face + 1}` : "Candidates"),
    h("p", { class: "muted" },
      `Case ${result.case_id} · audit entry #${result.audit_sequence ?? "–"} · operating point: ${operatingPoint(result)}`),
    searchedNotes(result),
    result.match_unavailable ? h("p", { class: "notice match-unavailable", role: "note" }, `No result can be a match: ${result.match_unavailable}`) : null,
    result.calibration_warning ? h("p", { class: "notice warning", role: "alert" }, `Calibration warning: ${result.calibration_warning}`) : null,
  );
  container.append(header);
  if (!face.candidates.length) {
    container.append(emptyState("No candidates for this face.", result.undated_excluded !== null && result.undated_excluded !== undefined
      ? "No photo taken in this date range could be compared: widen the range or clear it (More options)."
      : "The collection searched may be empty: add photos to it, or search all collections."));
    return;
  }
  // Leads first; those below the lead threshold are folded away (loading their thumbnails is an audited view,
  // so they are fetched only when the operator opens the fold). `shown`: what the compare view steps through.
  const above = face.candidates.filter((c) => c.label !== "no match");
  const below = face.candidates.filter((c) => c.label === "no match");
  const shown = [...above];
  const compact = sessionStorage.getItem(LAYOUT_KEY) === "list";
  container.classList.toggle("compact", compact);
  const toggle = h("button", { type: "button", class: "layout-toggle", "aria-pressed": String(compact),
    onclick: () => {
      const on = !container.classList.contains("compact");
      container.classList.toggle("compact", on);
      toggle.setAttribute("aria-pressed", String(on));
      sessionStorage.setItem(LAYOUT_KEY, on ? "list" : "cards");
    } }, "Compact list");
  header.append(h("div", { class: "row layout" }, h("span", { class: "muted" }, "One card per photo, most similar first."), toggle));
  // Issue 13: filter by collection (when the results come from several); the compare view steps through what is shown.
  const names = [...new Set(face.candidates.map((c) => c.collection))].sort();
  const filter = h("select", { id: "result-collection" }, h("option", { value: "" }, "All collections"),
    names.map((n) => h("option", { value: n }, n)));
  const inFilter = (c) => !filter.value || c.collection === filter.value;
  filter.addEventListener("change", () => {
    for (const card of container.querySelectorAll(".candidate")) card.hidden = Boolean(filter.value) && card.dataset.collection !== filter.value;
  });
  if (names.length > 1) {
    header.append(h("div", { class: "field result-filter" }, h("label", { for: "result-collection" }, "Show collection"), filter));
  }
  const open = (c) => {
    const list = shown.filter(inFilter);
    compare(state, list, list.indexOf(c), caseId, onFace);
  };
  if (above.length) {
    container.append(cardList(above, state, caseId, open, "Candidates, most similar first", onFace));
  } else {
    container.append(emptyState("No candidate reached the operating point.",
      "Try another photo of the person (sharper, more frontal), or search all collections; the results below the threshold are most likely other people."));
  }
  if (below.length) {
    const fold = h("details", { class: "below-threshold" },
      h("summary", {}, `below threshold: most likely different people (${below.length})`));
    fold.addEventListener("toggle", () => {
      if (!fold.open || fold.querySelector("ol")) return;
      shown.push(...below);
      fold.append(cardList(below, state, caseId, open, "Candidates below the threshold, most similar first", onFace));
      filter.dispatchEvent(new Event("change"));
    });
    container.append(fold);
  }
  const more = moreButton(state, face, onMore);
  if (more) container.append(more);
}

function probeCrop(state) {
  // Cut the chosen face (with a margin) out of the local probe: nothing is sent to the server for this.
  const source = document.querySelector(".preview img");
  if (state.faceProbe) { // the probe is an indexed face's thumbnail: shown whole
    const whole = h("canvas", { width: "240", height: "240", role: "img", "aria-label": "The probe face" });
    if (source.complete && source.naturalWidth) whole.getContext("2d").drawImage(source, 0, 0, 240, 240);
    return whole;
  }
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

// The whole photo with the face's box drawn over it (percentages: the box follows the image's shown size).
function photoFigure(c, caseId, stated) {
  const img = h("img", { alt: `The whole photo of face ${c.face_id}`, class: "whole" });
  const frame = h("div", { class: "photo-frame" }, img);
  const taken = h("dd", { class: "taken" }, "…");
  const figure = h("figure", { class: "whole-photo" }, frame,
    h("figcaption", {}, h("dl", { class: "facts" },
      h("dt", {}, "Taken"), taken,
      h("dt", {}, "Source"), h("dd", { class: "source full" }, sourceFull(c.image)))));
  wholePhoto(c.face_id, caseId, stated).then((shown) => {
    img.src = shown.url;
    taken.textContent = shown.taken ? new Date(shown.taken).toLocaleString() : "no date in the photo";
    const [left, top, width, height] = shown.box;
    const [w, hgt] = shown.size;
    const box = h("span", { class: "box face-box", "aria-hidden": "true" });
    Object.assign(box.style, { left: `${(100 * left) / w}%`, top: `${(100 * top) / hgt}%`,
      width: `${(100 * width) / w}%`, height: `${(100 * height) / hgt}%` });
    frame.append(box);
  }).catch((error) => {
    frame.replaceChildren(h("p", { class: "muted" }, `The whole photo cannot be shown: ${error.message}`));
    taken.textContent = "unknown";
  });
  return figure;
}

// The source in full (not cut to its last folders as on a card): the path wraps, links stay links.
function sourceFull(image) {
  const parts = [];
  if (image.path) parts.push(h("code", { class: "path-full", "data-path": image.path }, image.path));
  parts.push(...link(image.source_url, "image source"), ...link(image.page_url, "page"));
  return parts.length ? parts : [h("span", { class: "muted" }, "unknown")];
}

function isTyping(target) {
  return target instanceof HTMLElement && (target.matches("textarea, input, select") || target.isContentEditable);
}

// Issue 13: the compare view steps through the candidates shown (buttons, or the arrow keys).
function compare(state, shown, start, caseId, onFace) {
  let index = start;
  const dialog = h("dialog", { class: "compare", "aria-labelledby": "compare-title" });

  function show(next) {
    index = Math.max(0, Math.min(shown.length - 1, next));
    const c = shown[index];
    const candidate = h("img", { alt: `Indexed face ${c.face_id}`, class: "thumb large" });
    thumbnail(c.face_id, caseId, state.stated).then((url) => { candidate.src = url; }).catch(showError);
    const controls = decisionControls("review");
    const current = reviewed.get(c.face_id);
    const done = h("p", { class: "review-done", role: "status" },
      current ? `In this case: ${statusText(current)}. A new decision replaces it.` : "");
    const button = h("button", { type: "submit", class: "primary" }, "Record decision");
    const form = h("form", { class: "review" }, controls.fields, button, done);
    const previous = h("button", { type: "button", class: "step", disabled: index === 0, onclick: () => show(index - 1) }, "← Previous");
    const following = h("button", { type: "button", class: "step", disabled: index === shown.length - 1, onclick: () => show(index + 1) }, "Next →");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      try {
        // Issue 13: kept on the server, in the case (the search that showed the face is named).
        const made = await api.post(`/cases/${encodeURIComponent(caseId)}/decisions`, { face_id: c.face_id,
          decision: controls.decision.value, note: controls.note.value, search_seq: state.result.audit_sequence ?? undefined });
        const status = made.decision === "confirmed lead" ? "awaiting second review" : made.decision;
        markDecided(c.face_id, status);
        button.disabled = false;
        done.textContent = `Recorded in case ${made.case_id} as audit entry #${made.audit_seq}: ${statusText(status)}.`;
      } catch (error) {
        button.disabled = false;
        done.textContent = error.message;
        controls.decision.focus();
      }
    });
    dialog.dataset.faceId = String(c.face_id);
    dialog.replaceChildren(
      h("div", { class: "compare-head" },
        h("h2", { id: "compare-title" }, `Compare: probe and candidate #${c.rank}`),
        h("button", { type: "button", class: "link", onclick: () => dialog.close() }, "Close")),
      h("div", { class: "stepper" }, previous,
        h("span", { class: "muted position" }, `${index + 1} of ${shown.length} · ← → to step`), following),
      h("div", { class: "side-by-side" },
        h("figure", {}, probeCrop(state), h("figcaption", {}, "Probe")),
        h("figure", {}, candidate, h("figcaption", {}, `Indexed face ${c.face_id}`)),
        photoFigure(c, caseId, state.stated)),
      labelBadge(c), facts(c, state.result), h("p", {}, faceButton(c, caseId, state, onFace, " (new search)")), form);
  }

  // On the document: a step replaces the dialog's content, and the focused button with it.
  const onKey = (event) => {
    if (!dialog.open || isTyping(event.target) || event.altKey || event.ctrlKey || event.metaKey) return;
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    const before = index;
    show(index + step);
    if (index !== before) dialog.focus();
  };
  document.addEventListener("keydown", onKey);
  dialog.tabIndex = -1;
  dialog.addEventListener("close", () => { document.removeEventListener("keydown", onKey); dialog.remove(); });
  show(index);
  document.body.append(dialog);
  dialog.showModal();
}
