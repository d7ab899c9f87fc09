// Issue 13: a case's report, downloaded from the case page (HTML to print and hand over, JSON for tools),
// and "Check a report": a report file checked against the audit log (the server finds the case_report
// entry holding its SHA-256 and verifies the chain up to the head the report states; one changed byte
// makes it invalid). The download is fetched with the key and saved through a blob: link; its SHA-256
// and audit number (response headers) are shown, so the user can note them with the file.
import { api } from "./api.js";
import { h, field } from "./dom.js";
import { showError } from "./notify.js";

/** The report buttons of a case page and the line that says what was saved. */
export function reportDownloads(caseId) {
  const saved = h("div", { class: "report-saved", "aria-live": "polite" });
  const button = (format, text) => h("button", { type: "button", onclick: async (event) => {
    const control = event.currentTarget;
    control.disabled = true;
    try {
      const headers = await api.download(`/cases/${encodeURIComponent(caseId)}/report`, null, { format });
      saved.replaceChildren(h("p", { class: "banner ok", role: "status" },
        `The ${format.toUpperCase()} report was saved (audit #${headers.get("X-Audit-Sequence")}). Its SHA-256: `,
        h("code", { class: "path-full report-sha" }, headers.get("X-Report-SHA256"))));
    } catch (error) { showError(error); } finally { control.disabled = false; }
  } }, text);
  return h("section", { class: "card wide case-report", "aria-labelledby": "case-report-title" },
    h("h2", { id: "case-report-title" }, "Report"),
    h("p", { class: "muted" }, "The case, its searches, the candidates decided about and the decisions, with the audit "
      + "chain head. Each download is recorded in the audit log with the file's SHA-256."),
    h("div", { class: "actions" }, button("html", "Download report (HTML)"), button("json", "Download report (JSON)")),
    saved);
}

/** "Check a report": upload a report file; the verdict (valid, or why not) is shown and focused. */
export function reportCheck() {
  const file = h("input", { type: "file", name: "file", required: true, accept: ".html,.json,text/html,application/json" });
  const verdict = h("div", { class: "verdict", tabindex: "-1", "aria-live": "polite" });
  const form = h("form", { class: "check-report", "aria-label": "Check a report" },
    h("h2", {}, "Check a report"),
    h("p", { class: "muted" }, "Is a report file exactly as it was exported, and is the audit log it names intact?"),
    field("Report file (HTML or JSON)", file),
    h("button", { type: "submit" }, "Check report"), verdict);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) { showError(new Error("Choose a report file to check.")); return; }
    const body = new FormData();
    body.append("file", file.files[0]);
    try {
      const v = await api.post("/cases/verify-report", body);
      verdict.replaceChildren(v.valid
        ? h("p", { class: "banner ok verdict-valid" }, `Valid: the ${v.format} report of case ${v.case_id}, exported by `
          + `${v.exported_by} at ${v.exported_at} (audit #${v.audit_seq}); the audit log verifies up to the head it states.`)
        : h("p", { class: "banner error verdict-invalid" }, `Not valid: ${v.problem}`),
        h("p", { class: "muted" }, "SHA-256 of the file: ", h("code", { class: "path-full" }, v.sha256)));
      verdict.focus();
    } catch (error) { showError(error); }
  });
  return h("section", { class: "card wide" }, form);
}
