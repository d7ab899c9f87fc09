// The search page: pick or drop a probe photo, state the case and purpose, search every face in it,
// then switch between the probe's faces (boxes drawn from the API's faces[].box) to see candidates.
// Issue 13: the case is chosen from the user's open cases (the server's), not typed; more photos of the same
// person can be added to the probe (sent as several "probe" files with same_person, fused into one face);
// any result can become the probe ("search with this face": probe_face_id); a date range narrows the photos.
import { api } from "./api.js";
import { h, field, emptyState } from "./dom.js";
import { showError } from "./notify.js";
import { renderResults, releaseThumbnails } from "./results.js";
import { openCases, chosenCase } from "./cases.js";

export async function searchView(main, me) {
  // files: the probe photos (the first is shown; more are fused as one person); faceProbe: {faceId, url} instead.
  const state = { files: [], previewUrl: null, faceProbe: null, result: null, face: 0 };

  const fileInput = h("input", { type: "file", name: "probe", accept: "image/*", class: "visually-hidden" });
  const moreInput = h("input", { type: "file", id: "probe-more", accept: "image/*", multiple: true, class: "visually-hidden" });
  const moreLabel = h("label", { for: "probe-more", class: "linkish add-photos" }, "Add photos of the same person");
  const strip = h("div", { class: "probe-strip", role: "group", "aria-label": "Probe photos", hidden: true });
  const dropText = h("span", {}, "Drop a photo here, or ", h("span", { class: "linkish" }, "choose a file"));
  const drop = h("label", { class: "drop", for: "probe-file" }, fileInput, dropText);
  fileInput.id = "probe-file";
  const preview = h("div", { class: "preview", hidden: true });
  const faceList = h("div", { class: "face-list", role: "group", "aria-label": "Faces found in the probe" });

  const cases = await openCases();
  const caseInput = h("select", { name: "case_id", required: true },
    cases.map((c) => h("option", { value: c.case_id, selected: c.case_id === chosenCase.get() }, c.case_id)));
  const purpose = h("textarea", { name: "purpose", required: true, minlength: "3", maxlength: "1000", rows: "3",
    placeholder: "e.g. identify the person in the CCTV still from the 12 May burglary" });
  const legal = h("input", { name: "legal_basis", maxlength: "1000", autocomplete: "off" });
  const collection = h("select", { name: "collection" }, h("option", { value: "" }, "All collections"));
  const topK = h("select", { name: "top_k" }, [10, 20, 50].map((n) => h("option", { value: String(n), selected: n === 20 }, String(n))));
  const takenAfter = h("input", { type: "date", name: "taken_after" });
  const takenBefore = h("input", { type: "date", name: "taken_before" });
  const submit = h("button", { type: "submit", class: "primary" }, "Search");
  const results = h("section", { class: "results", "aria-live": "polite", "aria-label": "Search results" });

  const form = h("form", { class: "card search-form", "aria-labelledby": "search-title" },
    h("h1", { id: "search-title" }, "Search by photo"),
    h("div", { class: "field" }, h("span", { class: "label", id: "probe-label" }, "Probe photo"), drop,
      h("p", { class: "help" }, "The photo is sent for this search only and never stored; its SHA-256 fingerprint is audited.")),
    preview, faceList,
    h("div", { class: "field" }, moreInput, moreLabel,
      h("p", { class: "help" }, "Several photos of one person find their other photos better: their faces are fused into one probe.")),
    strip,
    cases.length ? field("Case", caseInput) : noCase(me),
    field("Purpose", purpose, "Starts as the case's purpose: say what this search is for."),
    h("p", { class: "help why" }, "Why both are required: every search is written to a tamper-evident audit log with your name, "
      + "the case and the purpose, so that auditors can check each search was justified."),
    h("details", {}, h("summary", {}, "More options"),
      field("Collection", collection),
      field("Candidates per face", topK),
      h("div", { class: "date-range" }, field("Taken from", takenAfter), field("Taken until", takenBefore)),
      h("p", { class: "help" }, "Only photos with a date (EXIF) in the range are searched; photos without one are left out."),
      field("Legal basis", legal, "Required by collections configured to demand it.")),
    submit,
  );
  // The case's purpose and legal basis fill the fields until the user writes their own.
  let filled = { purpose: "", legal: "" };
  function fillFromCase() {
    const c = cases.find((x) => x.case_id === caseInput.value);
    if (!c) return;
    chosenCase.set(c.case_id);
    if (purpose.value.trim() === filled.purpose) purpose.value = c.purpose;
    if (legal.value.trim() === filled.legal) legal.value = c.legal_basis || "";
    filled = { purpose: purpose.value, legal: legal.value };
  }
  caseInput.addEventListener("change", fillFromCase);
  fillFromCase();
  if (!cases.length) submit.disabled = true;
  const nothingYet = () => emptyState("No search yet.", "Choose a probe photo and the case, state the purpose, then press Search.");
  results.append(nothingYet());
  main.append(h("div", { class: "search-layout" }, form, results));

  api.get("/collections").then((data) => {
    for (const c of data.collections) collection.append(h("option", { value: c.name }, `${c.name} (${c.faces} faces)`));
  }).catch(showError);

  function resetResults() {
    state.result = null;
    state.face = 0;
    faceList.replaceChildren();
    results.replaceChildren(nothingYet());
  }

  function showPreview(url, alt) {
    preview.replaceChildren(h("img", { src: url, alt }));
    preview.hidden = false;
  }

  function choose(file) {
    if (!file) return;
    if (!file.type.startsWith("image/")) { showError(new Error("That file is not an image.")); return; }
    showError(null);
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.files = [file];
    state.faceProbe = null;
    state.previewUrl = URL.createObjectURL(file);
    showPreview(state.previewUrl, "The probe photo");
    resetResults();
    drawStrip();
    dropText.replaceChildren(file.name + " — ", h("span", { class: "linkish" }, "choose another"));
  }

  // Issue 13: more photos of the same person, shown as a strip that can be cleared (the first photo stays).
  function addPhotos(files) {
    const images = [...files].filter((f) => f.type.startsWith("image/"));
    if (images.length < files.length) { showError(new Error("Only image files can be added to the probe.")); }
    if (!images.length) return;
    if (!state.files.length || state.faceProbe) { choose(images.shift()); }
    state.files.push(...images);
    resetResults();
    drawStrip();
  }

  function drawStrip() {
    for (const img of strip.querySelectorAll("img")) URL.revokeObjectURL(img.src);
    strip.replaceChildren();
    strip.hidden = state.files.length < 2;
    if (strip.hidden) return;
    strip.append(h("span", { class: "help" }, `${state.files.length} photos of one person:`),
      ...state.files.map((f, i) => h("img", { src: URL.createObjectURL(f), alt: `Probe photo ${i + 1}: ${f.name}`, title: f.name })),
      h("button", { type: "button", class: "link", onclick: () => { state.files = state.files.slice(0, 1); resetResults(); drawStrip(); } },
        "Clear the added photos"));
  }

  // Issue 13: "search with this face": an indexed face (a result) becomes the probe, by its id.
  function useFace(c, url) {
    state.files = [];
    state.faceProbe = { faceId: c.face_id, url };
    fileInput.value = "";
    drawStrip();
    showPreview(url, `The probe: indexed face ${c.face_id}`);
    dropText.replaceChildren(`Indexed face ${c.face_id} — `, h("span", { class: "linkish" }, "choose a photo instead"));
    for (const dialog of document.querySelectorAll("dialog.compare")) dialog.close();
    state.face = 0;
    form.requestSubmit();
  }

  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
  moreInput.addEventListener("change", () => { addPhotos(moreInput.files); moreInput.value = ""; });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) {
      // Keep the input in step, so the form's "required" check sees the dropped file.
      const transfer = new DataTransfer();
      transfer.items.add(file);
      fileInput.files = transfer.files;
      choose(file);
    }
  });

  function selectFace(index) {
    state.face = index;
    for (const el of main.querySelectorAll("[data-face]")) {
      el.setAttribute("aria-pressed", String(Number(el.dataset.face) === index));
    }
    renderResults(results, state, state.result.case_id, (next) => {
      topK.value = String(next);
      if (![...topK.options].some((o) => o.value === topK.value)) topK.append(h("option", { value: topK.value, selected: true }, topK.value));
      topK.value = String(next);
      form.requestSubmit();
    }, useFace);
  }

  function drawFaces() {
    const { faces, probe_size: size } = state.result;
    preview.querySelectorAll(".box").forEach((el) => el.remove());
    faceList.replaceChildren();
    if (state.faceProbe) return; // the preview is the face itself: no box to draw
    if (faces.length > 1) faceList.append(h("span", { class: "help" }, `${faces.length} faces found: choose one.`));
    faces.forEach((face, i) => {
      const [left, top, width, height] = face.box;
      const label = `Face ${i + 1}`;
      const box = h("button", { type: "button", class: "box", "data-face": String(i), "aria-label": label, title: label,
        onclick: () => selectFace(i) }, h("span", {}, String(i + 1)));
      // Percentages of the decoded probe's size: the boxes follow the image whatever size it is shown at.
      Object.assign(box.style, { left: `${(100 * left) / size[0]}%`, top: `${(100 * top) / size[1]}%`,
        width: `${(100 * width) / size[0]}%`, height: `${(100 * height) / size[1]}%` });
      preview.append(box);
      if (faces.length > 1) {
        faceList.append(h("button", { type: "button", class: "chip", "data-face": String(i), onclick: () => selectFace(i) },
          `${label} · ${face.candidates.length} candidates`));
      }
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!state.files.length && !state.faceProbe) { showError(new Error("Choose a probe photo first.")); return; }
    showError(null);
    const body = new FormData();
    if (state.faceProbe) body.append("probe_face_id", String(state.faceProbe.faceId));
    for (const file of state.files) body.append("probe", file, file.name);
    if (state.files.length > 1) body.append("same_person", "true");
    if (takenAfter.value) body.append("taken_after", takenAfter.value);
    if (takenBefore.value) body.append("taken_before", takenBefore.value);
    body.append("case_id", caseInput.value.trim());
    body.append("purpose", purpose.value.trim());
    body.append("top_k", topK.value);
    if (collection.value) body.append("collection", collection.value);
    if (legal.value.trim()) body.append("legal_basis", legal.value.trim());
    submit.disabled = true;
    submit.textContent = "Searching…";
    releaseThumbnails(state.faceProbe && state.faceProbe.url);
    results.replaceChildren(h("p", { class: "muted" }, "Searching…"));
    try {
      state.result = await api.post("/search", body);
      state.stated = { purpose: purpose.value.trim(), legal_basis: legal.value.trim() };
      drawFaces();
      selectFace(Math.max(0, Math.min(state.face, state.result.faces.length - 1)));
    } catch (error) {
      results.replaceChildren(nothingYet());
      showError(error);
    } finally {
      submit.disabled = false;
      submit.textContent = "Search";
    }
  });
}

// Issue 13: no open case, no search; say what to do next.
function noCase(me) {
  const next = me && me.actions.includes("open_case")
    ? h("span", {}, "Every search belongs to an open case: ", h("a", { href: "#/cases" }, "create a case"), " first.")
    : "Every search belongs to an open case: ask an investigator or an administrator to add you to one.";
  return h("div", { class: "field no-case" }, emptyState("You have no open case.", next));
}
