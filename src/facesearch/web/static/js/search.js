// The search page: pick or drop a probe photo, state the case and purpose, search every face in it,
// then switch between the probe's faces (boxes drawn from the API's faces[].box) to see candidates.
// Issue 13: the case is chosen from the user's open cases (the server's), not typed.
import { api } from "./api.js";
import { h, field, emptyState } from "./dom.js";
import { showError } from "./notify.js";
import { renderResults, releaseThumbnails } from "./results.js";
import { openCases, chosenCase } from "./cases.js";

export async function searchView(main, me) {
  const state = { file: null, previewUrl: null, result: null, face: 0 };

  const fileInput = h("input", { type: "file", name: "probe", accept: "image/*", class: "visually-hidden", required: true });
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
  const submit = h("button", { type: "submit", class: "primary" }, "Search");
  const results = h("section", { class: "results", "aria-live": "polite", "aria-label": "Search results" });

  const form = h("form", { class: "card search-form", "aria-labelledby": "search-title" },
    h("h1", { id: "search-title" }, "Search by photo"),
    h("div", { class: "field" }, h("span", { class: "label", id: "probe-label" }, "Probe photo"), drop,
      h("p", { class: "help" }, "The photo is sent for this search only and never stored; its SHA-256 fingerprint is audited.")),
    preview, faceList,
    cases.length ? field("Case", caseInput) : noCase(me),
    field("Purpose", purpose, "Starts as the case's purpose: say what this search is for."),
    h("p", { class: "help why" }, "Why both are required: every search is written to a tamper-evident audit log with your name, "
      + "the case and the purpose, so that auditors can check each search was justified."),
    h("details", {}, h("summary", {}, "More options"),
      field("Collection", collection),
      field("Candidates per face", topK),
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

  function choose(file) {
    if (!file) return;
    if (!file.type.startsWith("image/")) { showError(new Error("That file is not an image.")); return; }
    showError(null);
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.file = file;
    state.previewUrl = URL.createObjectURL(file);
    state.result = null;
    state.face = 0;
    preview.replaceChildren(h("img", { src: state.previewUrl, alt: "The probe photo" }));
    preview.hidden = false;
    faceList.replaceChildren();
    results.replaceChildren(nothingYet());
    dropText.replaceChildren(file.name + " — ", h("span", { class: "linkish" }, "choose another"));
  }

  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
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
    });
  }

  function drawFaces() {
    const { faces, probe_size: size } = state.result;
    preview.querySelectorAll(".box").forEach((el) => el.remove());
    faceList.replaceChildren();
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
    if (!state.file) { showError(new Error("Choose a probe photo first.")); return; }
    showError(null);
    const body = new FormData();
    body.append("probe", state.file, state.file.name);
    body.append("case_id", caseInput.value.trim());
    body.append("purpose", purpose.value.trim());
    body.append("top_k", topK.value);
    if (collection.value) body.append("collection", collection.value);
    if (legal.value.trim()) body.append("legal_basis", legal.value.trim());
    submit.disabled = true;
    submit.textContent = "Searching…";
    releaseThumbnails();
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
