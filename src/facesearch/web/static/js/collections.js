// Collections (admins): create one, set what its searches must state and how long it keeps photos,
// erase it with a receipt. Adding photos (admins, ingesters) is a background job whose progress is polled.
import { api } from "./api.js";
import { h, field, table, when } from "./dom.js";
import { showError } from "./notify.js";
import { confirmAction } from "./confirm.js";

const NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9._\\-]*";
const POLL_MS = 1000;

function settingsFields(current = {}) {
  const legal = h("input", { type: "checkbox", name: "legal_basis", checked: (current.require || []).includes("legal_basis") });
  const retention = h("input", { type: "number", name: "retention_days", min: "1", max: "36500", step: "1",
    value: current.retention_days ?? "", placeholder: "keep" });
  return {
    legal, retention,
    nodes: [
      h("div", { class: "field check" }, h("label", {}, legal, " Searches must state a legal basis")),
      field("Retention (days)", retention, "Empty: keep. Purged by `facesearch maintain`."),
    ],
    value: () => ({ require: legal.checked ? ["legal_basis"] : [], retention_days: retention.value ? Number(retention.value) : null }),
  };
}

function describe(settings) {
  const parts = [];
  if ((settings.require || []).includes("legal_basis")) parts.push("legal basis required");
  if (settings.retention_days) parts.push(`kept ${settings.retention_days} days`);
  return parts.join(" · ") || "—";
}

export async function collectionsView(main) {
  const list = h("div", {});
  const shown = h("div", { "aria-live": "polite" });
  const name = h("input", { name: "name", required: true, maxlength: "200", pattern: NAME_PATTERN, autocomplete: "off" });
  const created = settingsFields();
  const form = h("form", { class: "filters" }, field("Collection name", name), ...created.nodes,
    h("button", { type: "submit", class: "primary" }, "Create collection"));
  main.append(h("section", { class: "card wide", "aria-labelledby": "collections-title" },
    h("h1", { id: "collections-title" }, "Collections"),
    h("p", { class: "muted" }, "Each collection holds photos from one lawful source. Its settings bind every search of it."),
    form, shown, list));

  function edit(c) {
    const fields = settingsFields(c.settings);
    const save = h("button", { type: "submit", class: "primary" }, "Save settings");
    const cancel = h("button", { type: "button", onclick: () => dialog.close() }, "Cancel");
    const editor = h("form", {}, h("h2", { id: "settings-title" }, `Settings of ${c.name}`), ...fields.nodes,
      h("div", { class: "dialog-actions" }, cancel, save));
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "settings-title" }, editor);
    editor.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api.put(`/collections/${encodeURIComponent(c.name)}`, fields.value());
        dialog.close();
        shown.replaceChildren(h("div", { class: "banner ok", role: "status" }, `Settings of ${c.name} saved.`));
        await load();
      } catch (error) { dialog.close(); showError(error); }
    });
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }

  async function erase(c) {
    const reason = await confirmAction({ title: `Erase ${c.name}?`, action: "Erase collection", reason: true, typeToConfirm: c.name,
      text: `Every photo (${c.images}), face (${c.faces}), embedding and thumbnail in ${c.name} is deleted for good, and the collection itself.` });
    if (reason === null) return;
    try {
      const receipt = await api.del(`/collections/${encodeURIComponent(c.name)}`, { reason });
      shown.replaceChildren(h("div", { class: "banner ok", role: "status" },
        h("strong", {}, `${c.name} erased. `),
        `Receipt ${receipt.receipt_id}: ${receipt.image_ids.length} photos, ${receipt.face_ids.length} faces deleted`,
        receipt.audit_sequence ? ` (audit entry #${receipt.audit_sequence}).` : "."));
      await load();
    } catch (error) { showError(error); }
  }

  const columns = [
    ["Name", (c) => h("strong", {}, c.name)],
    ["Photos", (c) => c.images.toLocaleString()],
    ["Faces", (c) => c.faces.toLocaleString()],
    ["Settings", (c) => describe(c.settings)],
    ["", (c) => h("div", { class: "row-actions" },
      h("button", { type: "button", onclick: () => edit(c), "aria-label": `Settings of ${c.name}` }, "Settings"),
      h("button", { type: "button", class: "danger", onclick: () => erase(c), "aria-label": `Erase ${c.name}` }, "Erase"))],
  ];

  async function load() {
    const data = await api.get("/collections");
    list.replaceChildren(
      h("p", { class: "muted" }, `${data.images.toLocaleString()} photos, ${data.faces.toLocaleString()} faces; model ${data.model}.`),
      table(columns, data.collections, "No collections yet.", "Create one above, named after the lawful source of its photos; then add photos to it."));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api.post("/collections", { name: name.value.trim(), ...created.value() });
      shown.replaceChildren(h("div", { class: "banner ok", role: "status" }, `Collection ${made.name} created.`));
      form.reset();
      await load();
    } catch (error) { showError(error); }
  });
  await load();
}

function progress(job) {
  const total = job.total || 0;
  const bar = h("progress", { max: String(Math.max(total, 1)), value: String(job.done) });
  // Issue 13: the refused files are listed in the open, each with why, the good ones are indexed anyway.
  const rejected = job.rejected.length
    ? h("div", { class: "refused" }, h("strong", {}, `${job.rejected.length} ${job.rejected.length === 1 ? "file" : "files"} refused (not stored):`),
      h("ul", {}, job.rejected.map((r) => h("li", {}, h("span", { class: "name" }, r.source), ` — ${r.message} `, h("code", {}, r.code)))))
    : null;
  return h("div", { class: "job", "data-status": job.status },
    h("div", { class: "row" }, h("strong", {}, `Job ${job.id.slice(0, 8)} · ${job.status}`), h("span", {}, `${job.done} / ${total || "?"}`)),
    bar,
    h("p", { class: "muted" }, `${job.indexed} photos indexed, ${job.faces} faces, ${job.duplicates + job.already_indexed} already held, `
      + `${job.low_quality_faces} low-quality faces skipped.`),
    job.error ? h("p", { class: "banner error" }, `${job.error.code}: ${job.error.message}`) : null,
    rejected);
}

const JOB_COLUMNS = [
  ["Started", (j) => when(j.created_at)],
  ["By", (j) => j.actor],
  ["Collection", (j) => j.collection],
  ["Status", (j) => j.status],
  ["Photos", (j) => `${j.indexed} indexed of ${j.total}`],
  ["Faces", (j) => String(j.faces)],
  ["Rejected", (j) => String(j.rejected.length)],
];

export async function ingestView(main) {
  const files = h("input", { type: "file", name: "files", accept: "image/*", multiple: true, required: true });
  const collection = h("input", { name: "collection", required: true, maxlength: "200", pattern: NAME_PATTERN, value: "default",
    list: "collection-names", autocomplete: "off" });
  const names = h("datalist", { id: "collection-names" });
  const minQuality = h("input", { type: "number", name: "min_quality", min: "0", max: "1", step: "0.05", value: "0" });
  const submit = h("button", { type: "submit", class: "primary" }, "Upload and index");
  const current = h("div", { "aria-live": "polite" });
  const jobs = h("div", {});
  const form = h("form", { class: "filters" }, field("Photos", files), field("Collection", collection), names,
    field("Minimum face quality", minQuality), submit);
  main.append(h("section", { class: "card wide", "aria-labelledby": "ingest-title" },
    h("h1", { id: "ingest-title" }, "Add photos"),
    h("p", { class: "muted" }, "Only photos you hold lawfully. Each file is checked before anything is stored; "
      + "indexing runs in the background and this page follows it."),
    form, current, h("h2", {}, "Recent jobs"), jobs));

  api.get("/collections").then((data) => {
    for (const c of data.collections) names.append(h("option", { value: c.name }));
  }).catch(showError);

  async function loadJobs() { jobs.replaceChildren(table(JOB_COLUMNS, (await api.get("/jobs")).jobs, "No jobs yet.",
    "Choose photos above, name their collection and press Upload and index.")); }

  async function follow(job) {
    current.replaceChildren(progress(job));
    while (job.status === "queued" || job.status === "running") {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (!current.isConnected) return; // the user left the page
      job = await api.get(`/jobs/${job.id}`);
      current.replaceChildren(progress(job));
    }
    await loadJobs();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = new FormData();
    for (const file of files.files) body.append("files", file);
    body.append("collection", collection.value.trim());
    body.append("min_quality", minQuality.value || "0");
    submit.disabled = true;
    showError(null);
    try {
      const job = await api.post("/ingest/uploads", body);
      files.value = "";
      await follow(job);
    } catch (error) { showError(error); } finally { submit.disabled = false; }
  });
  await loadJobs();
}
