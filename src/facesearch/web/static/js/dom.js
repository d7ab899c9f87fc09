// Tiny helpers to build the DOM without innerHTML, so that text from the API (names, purposes,
// file paths) is always shown as text and can never become markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function field(label, control, help) {
  const id = control.id || "f-" + Math.random().toString(36).slice(2);
  control.id = id;
  const hint = help ? h("p", { class: "help", id: id + "-help" }, help) : null;
  if (hint) control.setAttribute("aria-describedby", hint.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint);
}

// Issue 13: an empty state says what is (not) there and what to do next.
export function emptyState(what, next) {
  return h("div", { class: "empty" }, h("strong", {}, what), next ? h("span", { class: "muted" }, next) : null);
}

export function table(columns, rows, empty = "Nothing yet.", next = null) {
  if (!rows.length) return emptyState(empty, next);
  return h(
    "div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))),
    ),
  );
}

export function when(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return isNaN(moment) ? String(iso) : moment.toLocaleString();
}
