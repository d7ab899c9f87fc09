// Issue 14: people in the archive, in the web app. Grouping every face into persons is biometric processing of
// everyone in the archive, so the page works within one open case the user chose (its purpose and legal basis
// are stated on every request, and the server audits each). The grid (#/people) shows the persons with their
// representative face and counts, hidden ones behind a toggle; a person's page (#/person/<id>) shows its faces
// and the corrections: name, hide, merge (the dry-run plan confirmed first), split (faces moved out into a new
// person, confirmed first), "not this person" per face, and the CSV export. The server decides everything
// (opted-out people are never sent; roles without `people` get 403): this page only asks and shows.
import { api, key } from "./api.js";
import { h, field, emptyState } from "./dom.js";
import { showError } from "./notify.js";
import { confirmAction } from "./confirm.js";
import { openCases, chosenCase, caseHref } from "./cases.js";

// Face thumbnails already fetched by this key for a case: every fetch is an audited face view, so each is asked
// for once per page visit and key, not once per redraw (after a rename, a merge ...). Another key starts afresh.
const fetched = { key: null, urls: new Map() };

function faceUrl(faceId, stated) {
  if (fetched.key !== key.get()) Object.assign(fetched, { key: key.get(), urls: new Map() });
  const cacheKey = `${stated.case_id}/${faceId}`;
  if (!fetched.urls.has(cacheKey)) {
    const pending = api.imageUrl(`/faces/${faceId}/thumbnail`, stated);
    pending.catch(() => fetched.urls.delete(cacheKey)); // a failure is asked again next time
    fetched.urls.set(cacheKey, pending);
  }
  return fetched.urls.get(cacheKey);
}

function faceImg(faceId, stated, alt) {
  const img = h("img", { alt, class: "thumb person-thumb", "data-face-id": String(faceId) });
  faceUrl(faceId, stated).then((url) => { img.src = url; })
    .catch((error) => img.replaceWith(h("span", { class: "muted no-thumb" }, error.message)));
  return img;
}

/** What every people request states: the chosen case's id, purpose and legal basis (all audited). */
function statedFor(c) {
  const stated = { case_id: c.case_id, purpose: c.purpose };
  if (c.legal_basis) stated.legal_basis = c.legal_basis;
  return stated;
}

const personHref = (id) => "#/person/" + encodeURIComponent(id);
const personName = (p) => p.name || "unnamed";
const counts = (p) => `${p.face_count} face${p.face_count === 1 ? "" : "s"} · ${p.photo_count} photo${p.photo_count === 1 ? "" : "s"}`;

/** The case picker both pages start with; null (and an empty state drawn) when the user has no open case. */
async function pickCase(main, me, onChange) {
  const cases = await openCases();
  if (!cases.length) {
    main.append(h("section", { class: "card wide no-case" }, h("h1", {}, "People"),
      emptyState("You have no open case.", me.actions.includes("open_case")
        ? "Grouping the archive into persons is done for a case: create one on the Cases page first."
        : "Grouping the archive into persons is done for a case: ask to be added to one."),
      h("p", {}, h("a", { href: "#/cases" }, "Go to cases"))));
    return null;
  }
  const chosen = cases.find((c) => c.case_id === chosenCase.get()) || cases[0];
  const select = h("select", { name: "case_id", class: "people-case" },
    cases.map((c) => h("option", { value: c.case_id, selected: c.case_id === chosen.case_id }, c.case_id)));
  select.addEventListener("change", () => { chosenCase.set(select.value); onChange(); });
  chosenCase.set(chosen.case_id);
  return { c: chosen, control: field("Case", select, `For: ${chosen.purpose} (stated and audited with every look).`) };
}

async function download(stated) {
  try {
    await api.download("/people/export", `people-${stated.case_id}.csv`, stated);
  } catch (error) { showError(error); }
}

export async function peopleView(main, me) {
  const picked = await pickCase(main, me, () => rerender());
  if (!picked) return;
  const stated = statedFor(picked.c);
  const shown = h("div", { "aria-live": "polite" });
  const grid = h("div", {});
  const showHidden = h("input", { type: "checkbox", id: "people-show-hidden" });
  const toggle = h("label", { class: "check", for: showHidden.id }, showHidden, " ", h("span", {}, "Show hidden persons"));
  const section = h("section", { class: "card wide people-page", "aria-labelledby": "people-title" },
    h("h1", { id: "people-title" }, "People"),
    h("p", { class: "muted" }, "Faces grouped into persons at a measured operating point (a merge needs strong evidence). "
      + "Groups are leads, never identifications."),
    picked.control, shown, grid);
  main.append(section);
  let persons = [];

  function rerender() {
    main.replaceChildren();
    return peopleView(main, me).catch(showError);
  }

  async function cluster() {
    const ok = await confirmAction({ title: "Group faces into people?", action: "Group faces",
      text: "This compares every face in the archive with every other: biometric processing of everyone in it "
        + `(opted-out people and switched-off collections excepted). It is recorded for case ${stated.case_id} `
        + "with its purpose in the audit log. Names and corrections made earlier are kept." });
    if (ok === null) return;
    try {
      const done = await api.post("/people/cluster", stated);
      shown.replaceChildren(h("p", { class: "banner ok", role: "status" },
        `${done.faces} faces grouped into ${done.persons} persons (audit #${done.audit_sequence}).`));
      await load();
    } catch (error) { showError(error); }
  }

  function draw() {
    const hiddenCount = persons.filter((p) => p.hidden).length;
    toggle.lastChild.textContent = `Show hidden persons (${hiddenCount})`;
    const visible = persons.filter((p) => showHidden.checked || !p.hidden);
    if (!persons.length) {
      grid.replaceChildren(emptyState("No persons yet.", "The archive was never grouped into persons, or holds no face "
        + "that may be grouped. Grouping compares every face: it needs this case's purpose and is audited."),
      h("button", { type: "button", class: "primary", onclick: cluster }, "Group faces into people"));
      return;
    }
    const cards = visible.map((p) => h("li", { class: "person-card", "data-person-id": String(p.id), "data-hidden": String(p.hidden) },
      h("a", { href: personHref(p.id), class: "person-link", "aria-label": `Person ${p.id}: ${personName(p)}, ${counts(p)}` },
        faceImg(p.representative_face_id, stated, `Representative face of person ${p.id}`),
        h("span", { class: p.name ? "person-name" : "person-name muted" }, personName(p)),
        h("span", { class: "person-counts" }, counts(p)),
        p.hidden ? h("span", { class: "badge weak" }, "hidden") : null)));
    grid.replaceChildren(
      h("div", { class: "people-tools" }, toggle,
        h("button", { type: "button", onclick: () => download(stated) }, "Export CSV"),
        h("button", { type: "button", onclick: cluster }, "Group faces again")),
      h("h2", {}, `Persons (${visible.length})`),
      visible.length ? h("ul", { class: "people-grid" }, cards) : emptyState("Every person is hidden.", "Tick “Show hidden persons”."));
  }
  showHidden.addEventListener("change", draw);

  async function load() {
    persons = (await api.get("/people", { ...stated, include_hidden: "true" })).persons;
    draw();
  }
  await load();
}

export async function personView(main, me, id) {
  const picked = await pickCase(main, me, () => rerender());
  if (!picked) return;
  const stated = statedFor(picked.c);
  let person, all;
  try {
    [person, all] = await Promise.all([api.get(`/people/${encodeURIComponent(id)}`, stated),
      api.get("/people", { ...stated, include_hidden: "true" })]);
  } catch (error) {
    if (error.code !== "no_person") throw error;
    // A merged or emptied person, or one whose faces may no longer be shown (an opt-out): said plainly.
    main.append(h("section", { class: "card wide person-page gone" }, h("p", {}, h("a", { href: "#/people" }, "← All people")),
      emptyState(`There is no person ${id}.`, "It was merged into another, lost its last face, or may not be shown.")));
    return;
  }
  const title = `Person ${person.id}${person.name ? ": " + person.name : " (unnamed)"}`;

  function rerender(banner) {
    main.replaceChildren();
    return personView(main, me, id).then(() => {
      if (banner) main.querySelector(".person-shown").replaceChildren(h("p", { class: "banner ok", role: "status" }, banner));
    }).catch(showError);
  }

  // Name (an empty name clears it).
  const nameInput = h("input", { name: "name", maxlength: "200", autocomplete: "off", value: person.name || "" });
  const nameForm = h("form", { class: "person-name-form", "aria-label": "Name this person" },
    field("Name", nameInput, "Kept on the server; the audit log records that a name was set, not the name."),
    h("button", { type: "submit" }, "Save name"));
  nameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post(`/people/${person.id}/name`, { ...stated, name: nameInput.value.trim() });
      await rerender(nameInput.value.trim() ? `Named “${nameInput.value.trim()}”.` : "The name was cleared.");
    } catch (error) { showError(error); }
  });

  // Hide or show again.
  const hideButton = h("button", { type: "button", onclick: async () => {
    try {
      await api.post(`/people/${person.id}/hide`, { ...stated, hidden: !person.hidden });
      await rerender(person.hidden ? "The person is shown again." : "The person is hidden from the grid.");
    } catch (error) { showError(error); }
  } }, person.hidden ? "Unhide" : "Hide");

  // Merge: another person chosen from the list; the dry run's plan is what the confirmation says.
  const others = all.persons.filter((p) => p.id !== person.id);
  const other = h("select", { name: "other" }, h("option", { value: "" }, "Choose a person…"),
    others.map((p) => h("option", { value: String(p.id) }, `Person ${p.id}: ${personName(p)} (${counts(p)})${p.hidden ? ", hidden" : ""}`)));
  const mergeForm = h("form", { class: "person-merge", "aria-label": "Merge another person into this one" },
    field("Merge with", other, "The chosen person's faces join this one; both stay together through later groupings."),
    h("button", { type: "submit" }, "Merge…"));
  mergeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!other.value) { showError(new Error("Choose the person to merge into this one.")); other.focus(); return; }
    const body = { ...stated, other: Number(other.value) };
    try {
      const plan = await api.post(`/people/${person.id}/merge`, { ...body, dry_run: true });
      const chosen = others.find((p) => p.id === plan.merged);
      const ok = await confirmAction({ title: `Merge person ${plan.merged} into person ${plan.into}?`, action: "Merge",
        text: `Person ${plan.merged} (${chosen ? personName(chosen) : "unnamed"}) and its ${plan.faces_moved} `
          + `face${plan.faces_moved === 1 ? "" : "s"} move into person ${plan.into}, which will then hold `
          + `${person.face_count + plan.faces_moved} faces${plan.name ? ` and be named “${plan.name}”` : ""}. `
          + `Person ${plan.merged} disappears. Undo with a split.` });
      if (ok === null) return;
      const done = await api.post(`/people/${person.id}/merge`, body);
      await rerender(`Person ${done.merged} was merged into this one (${done.faces_moved} faces moved).`);
    } catch (error) { showError(error); }
  });

  // Split and "not this person": faces selected on the grid below.
  const selected = new Set();
  const moveButton = h("button", { type: "button", class: "primary", disabled: true }, "Move to a new person…");
  const selectedText = h("span", { class: "muted", "aria-live": "polite" }, "No face selected.");
  function updateSelection() {
    moveButton.disabled = selected.size === 0;
    selectedText.textContent = selected.size ? `${selected.size} face${selected.size === 1 ? "" : "s"} selected.` : "No face selected.";
  }
  moveButton.addEventListener("click", async () => {
    const body = { ...stated, face_ids: [...selected] };
    try {
      const plan = await api.post(`/people/${person.id}/split`, { ...body, dry_run: true });
      const moved = Array.isArray(plan.faces_moved) ? plan.faces_moved.length : plan.faces_moved;
      const ok = await confirmAction({ title: `Move ${moved} face${moved === 1 ? "" : "s"} to a new person?`, action: "Move faces",
        text: `${moved} face${moved === 1 ? "" : "s"} leave person ${person.id} for a new person; ${plan.faces_left} stay. `
          + "The two are kept apart from now on, also when the archive is grouped again." });
      if (ok === null) return;
      const done = await api.post(`/people/${person.id}/split`, body);
      await rerender(`Moved to person ${done.new_person_id}.`);
      main.querySelector(".person-shown .banner").append(" ", h("a", { href: personHref(done.new_person_id) }, "Open it"));
    } catch (error) { showError(error); }
  });

  async function notThisPerson(face) {
    const ok = await confirmAction({ title: `Face ${face.face_id} is not this person?`, action: "Not this person",
      text: `Face ${face.face_id} leaves person ${person.id} for a person of its own, and no later grouping puts it back here.` });
    if (ok === null) return;
    try {
      await api.post("/people/not-this-person", { ...stated, face_id: face.face_id });
      await rerender(`Face ${face.face_id} was taken out of this person.`);
    } catch (error) { showError(error); }
  }

  const faces = h("ul", { class: "people-grid person-faces" }, person.faces.map((face) => {
    const box = h("input", { type: "checkbox", id: `face-${face.face_id}`, value: String(face.face_id) });
    box.addEventListener("change", () => { if (box.checked) selected.add(face.face_id); else selected.delete(face.face_id); updateSelection(); });
    const photo = (face.image_path || "").split("/").pop();
    return h("li", { class: "person-card face-card", "data-face-id": String(face.face_id) },
      faceImg(face.face_id, stated, `Face ${face.face_id}`),
      h("label", { class: "check", for: box.id }, box, " ", `Select face ${face.face_id}`),
      h("span", { class: "muted path", title: face.image_path || "" }, photo || `photo ${face.image_id}`),
      face.how === "manual" ? h("span", { class: "badge weak" }, "placed by hand") : null,
      h("button", { type: "button", class: "link", "aria-label": `Face ${face.face_id} is not this person`,
        onclick: () => notThisPerson(face) }, "Not this person"));
  }));

  main.append(h("section", { class: "card wide person-page", "aria-labelledby": "person-title" },
    h("p", {}, h("a", { href: "#/people" }, "← All people")),
    h("h1", { id: "person-title" }, title),
    h("p", { class: "person-facts" }, counts(person), person.hidden ? " · hidden" : ""),
    picked.control,
    h("div", { class: "person-shown", "aria-live": "polite" }),
    h("div", { class: "person-actions" }, nameForm, h("div", { class: "field" }, hideButton), mergeForm)),
  h("section", { class: "card wide", "aria-labelledby": "person-faces-title" },
    h("h2", { id: "person-faces-title" }, `Faces (${person.faces.length})`),
    h("p", { class: "muted" }, "Select faces that are someone else, then move them to a new person."),
    h("div", { class: "people-tools" }, moveButton, selectedText,
      h("button", { type: "button", onclick: () => download(stated) }, "Export CSV")),
    faces,
    h("p", {}, h("a", { href: caseHref(stated.case_id) }, `Case ${stated.case_id}`))));
}
