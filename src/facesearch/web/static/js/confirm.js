// A confirmation dialog for actions that cannot be undone (revoking a key, erasing a collection).
// A <dialog> of the page's own rather than window.confirm(): it can ask for a reason (kept in the
// audit log) and, for the worst actions, make the user type the name of what goes.
import { h, field } from "./dom.js";

/**
 * Ask before doing something irreversible. Resolves to null when cancelled, else to the reason typed
 * ("" when no reason was asked for).
 * @param {{title: string, text: string, action: string, reason?: boolean, typeToConfirm?: string}} options
 */
export function confirmAction({ title, text, action, reason = false, typeToConfirm = null }) {
  return new Promise((resolve) => {
    const why = reason ? h("textarea", { name: "reason", rows: "2", maxlength: "1000", required: true }) : null;
    const typed = typeToConfirm ? h("input", { name: "confirm", autocomplete: "off", required: true, spellcheck: "false" }) : null;
    const go = h("button", { type: "submit", class: "danger" }, action);
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h("form", { method: "dialog" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, text),
      why ? field("Reason (kept in the audit log)", why) : null,
      typed ? field(`Type ${typeToConfirm} to confirm`, typed) : null,
      h("div", { class: "dialog-actions" }, cancel, go));
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" }, form);
    let answer = null;
    const check = () => { go.disabled = Boolean((typed && typed.value !== typeToConfirm) || (why && !why.value.trim())); };
    for (const input of [why, typed]) if (input) input.addEventListener("input", check);
    check();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (go.disabled) return;
      answer = why ? why.value.trim() : "";
      dialog.close();
    });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    (typed || why || go).focus();
  });
}
