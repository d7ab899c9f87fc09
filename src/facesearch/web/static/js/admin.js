// Admin pages: users (add, revoke, give a new key: a key is shown once, then only its hash exists)
// and opt-outs (register one from a photo, which is not kept; delete one).
import { api } from "./api.js";
import { h, field, table, when } from "./dom.js";
import { showError } from "./notify.js";
import { confirmAction } from "./confirm.js";

const ROLES = ["investigator", "auditor", "ingester", "admin"];

function keyBanner(created) {
  const keyField = h("input", { readonly: true, value: created.key, class: "key", "aria-label": "The new API key" });
  return h("div", { class: "banner warn", role: "status" },
    h("strong", {}, `Key for ${created.user.name} (${created.user.role}). `),
    "Copy it now and hand it over securely: it is stored only as a hash and cannot be shown again.",
    keyField,
    h("button", { type: "button", onclick: () => navigator.clipboard.writeText(created.key) }, "Copy"));
}

export async function usersView(main, me) {
  const list = h("div", {});
  const name = h("input", { name: "name", required: true, maxlength: "100", pattern: "[A-Za-z0-9][A-Za-z0-9._@\\-]*", autocomplete: "off" });
  const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, r)));
  const shown = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "filters" }, field("Name", name), field("Role", role), h("button", { type: "submit", class: "primary" }, "Add user"));
  main.append(h("section", { class: "card wide", "aria-labelledby": "users-title" },
    h("h1", { id: "users-title" }, "Users"), form, shown, list));

  async function revoke(user) {
    const ok = await confirmAction({ title: `Revoke ${user.name}?`, action: "Revoke key",
      text: `${user.name}'s key stops working at once, for good. Their past actions stay in the audit log.` });
    if (ok === null) return;
    try {
      await api.del(`/users/${encodeURIComponent(user.name)}`);
      shown.replaceChildren(h("div", { class: "banner ok", role: "status" }, `${user.name}'s key was revoked.`));
      await load();
    } catch (error) { showError(error); }
  }

  async function rotate(user) {
    const ok = await confirmAction({ title: `New key for ${user.name}?`, action: "Issue new key",
      text: `${user.name}'s current key stops working at once; the new one is shown here once.` });
    if (ok === null) return;
    try {
      shown.replaceChildren(keyBanner(await api.post(`/users/${encodeURIComponent(user.name)}/key`)));
      await load();
    } catch (error) { showError(error); }
  }

  const columns = [
    ["Name", (u) => u.name],
    ["Role", (u) => h("span", { class: "role" }, u.role)],
    ["Key id", (u) => h("code", {}, u.key_id)],
    ["Created", (u) => `${when(u.created_at)} by ${u.created_by}`],
    ["Status", (u) => (u.active ? "active" : `revoked ${when(u.revoked_at)}`)],
    ["", (u) => (u.active && u.name !== me.name
      ? h("div", { class: "row-actions" },
        h("button", { type: "button", onclick: () => rotate(u), "aria-label": `New key for ${u.name}` }, "New key"),
        h("button", { type: "button", class: "danger", onclick: () => revoke(u), "aria-label": `Revoke ${u.name}` }, "Revoke"))
      : "")],
  ];

  async function load() { list.replaceChildren(table(columns, (await api.get("/users")).users)); }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      shown.replaceChildren(keyBanner(await api.post("/users", { name: name.value.trim(), role: role.value })));
      name.value = "";
      await load();
    } catch (error) { showError(error); }
  });
  await load();
}

function optoutReceipt(receipt) {
  const faces = receipt.face_ids.length;
  const ids = (receipt.optout_ids.length ? receipt.optout_ids : [receipt.optout_id]).map((i) => `#${i}`).join(", ");
  return h("div", { class: receipt.warning ? "banner warn" : "banner ok", role: "status" },
    h("strong", {}, `Opt-out ${ids} registered. `),
    `${faces} matching face${faces === 1 ? "" : "s"} removed from ${receipt.image_ids.length} photo${receipt.image_ids.length === 1 ? "" : "s"} `,
    `(${receipt.threshold_source}); the photos were not kept. `,
    receipt.warning ? `${receipt.warning}. ` : "",
    receipt.audit_sequence ? `Audit entry #${receipt.audit_sequence}.` : "");
}

// What an opt-out would remove (POST /optouts/preview), shown before the admin confirms it.
function optoutPreview(preview, onConfirm, onCancel) {
  const faces = preview.face_ids.length;
  const columns = [
    ["Image", (i) => String(i.image_id)],
    ["Source", (i) => i.source],
    ["Faces", (i) => i.face_ids.join(", ")],
    ["What goes", (i) => (i.deleted ? "the photo" : "their face only")],
  ];
  const confirm = h("button", { type: "button", class: "danger", onclick: onConfirm }, "Confirm opt-out");
  const cancel = h("button", { type: "button", onclick: onCancel }, "Cancel");
  return h("div", { class: preview.warning ? "banner warn" : "banner", role: "status" },
    h("strong", {}, preview.warning ? "Nothing would be removed. " : `${faces} face${faces === 1 ? "" : "s"} would be removed. `),
    preview.warning || `Check the list, then confirm (${preview.threshold_source}).`,
    table(columns, preview.images, "No indexed photo matches."),
    h("div", { class: "dialog-actions" }, cancel, confirm));
}

export async function optoutsView(main) {
  const list = h("div", {});
  const shown = h("div", { "aria-live": "polite" });
  const photo = h("input", { type: "file", name: "photo", accept: "image/*", multiple: true, required: true });
  const note = h("input", { name: "note", maxlength: "1000", autocomplete: "off", placeholder: "e.g. request reference" });
  const submit = h("button", { type: "submit", class: "primary" }, "Register opt-out");
  const form = h("form", { class: "filters" }, field("Photos of the person", photo, "Several photos find more of their faces."),
    field("Note", note), submit);
  main.append(h("section", { class: "card wide", "aria-labelledby": "optouts-title" },
    h("h1", { id: "optouts-title" }, "Opt-outs"),
    h("p", { class: "muted" }, "People who asked to be removed. Registering one deletes every indexed face that search "
      + "would report as a match for one of the photos (you see the list first) and keeps that person out of future "
      + "ingests and searches. Only an embedding and a fingerprint of each photo are kept, never the photos."),
    form, shown, list));

  async function remove(o) {
    const ok = await confirmAction({ title: `Delete opt-out #${o.id}?`, action: "Delete opt-out",
      text: "The person may be indexed again from then on. Faces the opt-out removed are not restored." });
    if (ok === null) return;
    try {
      await api.del(`/optouts/${o.id}`);
      shown.replaceChildren(h("div", { class: "banner ok", role: "status" }, `Opt-out #${o.id} deleted.`));
      await load();
    } catch (error) { showError(error); }
  }

  const columns = [
    ["#", (o) => String(o.id)],
    ["Registered", (o) => `${when(o.created_at)} by ${o.created_by}`],
    ["Note", (o) => o.note],
    ["Photo SHA-256", (o) => h("code", { title: o.photo_sha256 }, o.photo_sha256.slice(0, 16) + "…")],
    ["", (o) => h("button", { type: "button", class: "danger", onclick: () => remove(o), "aria-label": `Delete opt-out ${o.id}` }, "Delete")],
  ];

  async function load() { list.replaceChildren(table(columns, (await api.get("/optouts")).optouts, "No opt-outs registered.",
    "When a person asks to be left out, register a photo of them above: their faces are removed and never indexed again.")); }

  function photosBody() {
    const body = new FormData();
    for (const file of photo.files) body.append("photo", file);
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!photo.files.length) return;
    submit.disabled = true;
    showError(null);
    try {
      const preview = await api.post("/optouts/preview", photosBody());
      shown.replaceChildren(optoutPreview(preview, register, () => shown.replaceChildren()));
    } catch (error) { showError(error); } finally { submit.disabled = false; }
  });

  async function register() {
    const body = photosBody();
    body.append("note", note.value.trim());
    showError(null);
    try {
      shown.replaceChildren(optoutReceipt(await api.post("/optouts", body)));
      form.reset();
      await load();
    } catch (error) { showError(error); }
  }
  await load();
}
