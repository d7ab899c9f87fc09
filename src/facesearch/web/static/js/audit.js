// The audit log (auditors, admins): whether the hash chain verifies, and the entries, filterable.
import { api } from "./api.js";
import { h, field, table, when } from "./dom.js";
import { showError } from "./notify.js";

const PAGE = 200;

function details(entry) {
  // Compact one-line JSON: the full entry, hashes included, is in the export.
  const text = JSON.stringify(entry.details);
  return h("code", { class: "details", title: text }, text.length > 160 ? text.slice(0, 157) + "…" : text);
}

const COLUMNS = [
  ["#", (e) => String(e.seq)],
  ["Time", (e) => when(e.at)],
  ["Actor", (e) => e.actor],
  ["Action", (e) => h("span", { class: "action" }, e.action)],
  ["Case", (e) => e.case_id || ""],
  ["Purpose", (e) => e.purpose || ""],
  ["Details", details],
];

function chainStatus(v) {
  if (v.ok) {
    return h("div", { class: "banner ok", id: "chain-status", role: "status" },
      h("strong", {}, "Chain verified. "),
      `${v.entries.toLocaleString()} entries; head #${v.head_sequence ?? "–"} `,
      h("code", { title: "Record this hash elsewhere to detect a rewrite of the whole log later" },
        (v.head_hash || "").slice(0, 16) + "…"));
  }
  return h("div", { class: "banner error", id: "chain-status", role: "alert" },
    h("strong", {}, "Chain broken. "), `First bad entry #${v.first_bad_sequence ?? "?"}: ${v.problem || "unknown problem"}`);
}

export async function auditView(main, me) {
  const status = h("div", {}, h("p", { class: "muted" }, "Verifying the hash chain…"));
  const caseInput = h("input", { name: "case_id", maxlength: "100" });
  const actor = h("input", { name: "actor", maxlength: "200" });
  const action = h("input", { name: "action", maxlength: "50", placeholder: "e.g. search, review, view_face" });
  const list = h("div", {});
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const filters = h("form", { class: "filters" }, field("Case ID", caseInput), field("Actor", actor), field("Action", action),
    h("button", { type: "submit" }, "Filter"));
  main.append(h("section", { class: "card wide", "aria-labelledby": "audit-title" },
    h("div", { class: "row" }, h("h1", { id: "audit-title" }, "Audit log"),
      h("div", { class: "row-actions" },
        h("button", { type: "button", onclick: () => verify() }, "Verify again"),
        me.actions.includes("export_audit")
          ? h("button", { type: "button", onclick: () => exportLog() }, "Export (JSON Lines)") : null)),
    status, filters, list, more));

  let entries = [];
  let next = null;

  async function verify() {
    try { status.replaceChildren(chainStatus(await api.get("/audit/verify"))); } catch (error) { showError(error); }
  }

  async function exportLog() {
    // The export is audited by the server; the file verifies offline with `facesearch audit verify --file`.
    try { await api.download("/audit/export", "facesearch-audit.jsonl"); } catch (error) { showError(error); }
  }

  async function load(reset) {
    if (reset) { entries = []; next = null; }
    const query = { limit: PAGE, after: next, case_id: caseInput.value.trim(), actor: actor.value.trim(), action: action.value.trim() };
    try {
      const page = await api.get("/audit", query);
      entries = entries.concat(page.entries);
      next = page.next_after;
      list.replaceChildren(table(COLUMNS, entries, "No entries match.", "Widen the filters above (action, actor, case or dates)."));
      more.hidden = next === null;
    } catch (error) { showError(error); }
  }

  filters.addEventListener("submit", (event) => { event.preventDefault(); load(true); });
  more.addEventListener("click", () => load(false));
  await Promise.all([verify(), load(true)]);
}
