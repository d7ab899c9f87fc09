// Admin pages: users (add one: the key is shown once, then only its hash exists) and opt-outs.
import { api } from "./api.js";
import { h, field, table, when } from "./dom.js";
import { showError } from "./notify.js";

const ROLES = ["investigator", "auditor", "ingester", "admin"];

const USER_COLUMNS = [
  ["Name", (u) => u.name],
  ["Role", (u) => h("span", { class: "role" }, u.role)],
  ["Key id", (u) => h("code", {}, u.key_id)],
  ["Created", (u) => `${when(u.created_at)} by ${u.created_by}`],
  ["Status", (u) => (u.active ? "active" : `revoked ${when(u.revoked_at)}`)],
];

export async function usersView(main) {
  const list = h("div", {});
  const name = h("input", { name: "name", required: true, maxlength: "100", pattern: "[A-Za-z0-9][A-Za-z0-9._@\\-]*", autocomplete: "off" });
  const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, r)));
  const shown = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "filters" }, field("Name", name), field("Role", role), h("button", { type: "submit", class: "primary" }, "Add user"));
  main.append(h("section", { class: "card wide", "aria-labelledby": "users-title" },
    h("h1", { id: "users-title" }, "Users"), form, shown, list));

  async function load() { list.replaceChildren(table(USER_COLUMNS, (await api.get("/users")).users)); }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api.post("/users", { name: name.value.trim(), role: role.value });
      const keyField = h("input", { readonly: true, value: created.key, class: "key", "aria-label": "The new API key" });
      shown.replaceChildren(h("div", { class: "banner warn", role: "status" },
        h("strong", {}, `Key for ${created.user.name} (${created.user.role}). `),
        "Copy it now and hand it over securely: it is stored only as a hash and cannot be shown again.",
        keyField,
        h("button", { type: "button", onclick: () => navigator.clipboard.writeText(created.key) }, "Copy")));
      name.value = "";
      await load();
    } catch (error) { showError(error); }
  });
  await load();
}

const OPTOUT_COLUMNS = [
  ["#", (o) => String(o.id)],
  ["Registered", (o) => `${when(o.created_at)} by ${o.created_by}`],
  ["Note", (o) => o.note],
  ["Photo SHA-256", (o) => h("code", { title: o.photo_sha256 }, o.photo_sha256.slice(0, 16) + "…")],
];

export async function optoutsView(main) {
  const data = await api.get("/optouts");
  main.append(h("section", { class: "card wide", "aria-labelledby": "optouts-title" },
    h("h1", { id: "optouts-title" }, "Opt-outs"),
    h("p", { class: "muted" }, "People who asked to be removed. Their faces were deleted and are kept out of the library; "
      + "only an embedding and the photo's fingerprint are kept, never the photo. Register new opt-outs with the CLI or POST /v1/optouts."),
    table(OPTOUT_COLUMNS, data.optouts, "No opt-outs registered.")));
}
