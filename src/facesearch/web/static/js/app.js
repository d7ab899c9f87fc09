// Entry point: sign-in, the navigation a role may use, and a hash router (#/search, #/audit, ...),
// so that the server only has to serve static files.
import { api, key, ApiError } from "./api.js";
import { h, field } from "./dom.js";
import { showError } from "./notify.js";
import { searchView } from "./search.js";
import { auditView } from "./audit.js";
import { usersView, optoutsView } from "./admin.js";
import { collectionsView, ingestView } from "./collections.js";
import { casesView, caseView } from "./cases.js";
import { alertsView, refreshAlertBadge } from "./watches.js";
import { peopleView, personView } from "./people.js";

const VIEWS = {
  search: { action: "search", render: searchView },
  ingest: { action: "ingest", render: ingestView },
  audit: { action: "read_audit", render: auditView },
  // After search and audit: the page a role lands on stays its main one (investigators search, auditors audit).
  cases: { action: "read_cases", render: casesView },
  case: { action: "read_cases", render: caseView, hidden: true }, // #/case/<id>: one case's page
  alerts: { action: "watch", render: alertsView },
  people: { action: "people", render: peopleView }, // issue 14
  person: { action: "people", render: personView, hidden: true }, // #/person/<id>: one person's page
  collections: { action: "manage_collections", render: collectionsView },
  users: { action: "manage_users", render: usersView },
  optouts: { action: "optout", render: optoutsView },
};

let me = null; // {name, role, actions} of the signed-in key

function signOut(message) {
  key.clear();
  me = null;
  location.hash = "#/signin";
  render(message);
}

function signInView(main, message) {
  const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h("form", { class: "card narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", { class: "muted" }, "Paste the API key an administrator gave you. It is kept in this tab only and is forgotten when the tab closes."),
    message ? h("p", { class: "banner warn", role: "status" }, message) : null,
    field("API key", input),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(null);
    key.set(input.value.trim());
    try {
      me = await api.get("/me");
      location.hash = "#/" + firstView();
      render();
    } catch (error) {
      key.clear();
      showError(error instanceof ApiError && error.status === 401 ? new Error("That key was not accepted.") : error);
    }
  });
  main.append(form);
  input.focus();
}

function firstView() {
  return Object.keys(VIEWS).find((name) => !VIEWS[name].hidden && me.actions.includes(VIEWS[name].action)) || "none";
}

function updateChrome() {
  const signedIn = Boolean(me);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("whoami").hidden = !signedIn;
  if (!signedIn) return;
  document.getElementById("who-name").textContent = me.name;
  document.getElementById("who-role").textContent = me.role;
  const current = location.hash.replace(/^#\//, "").replace(/^case\/.*/, "cases").replace(/^person\/.*/, "people");
  for (const link of document.querySelectorAll("#nav a")) {
    link.hidden = !me.actions.includes(link.dataset.action);
    if (link.getAttribute("href") === "#/" + current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  refreshAlertBadge(me); // issue 13: the unseen alerts of the cases the user watches, on every page
}

async function render(message) {
  // Each render draws into a slot of its own: a render overtaken by a newer one (sign-in sets the hash and
  // renders; the hashchange renders again) finishes into a detached slot instead of drawing the page twice.
  const main = h("div", { class: "view-slot" });
  document.getElementById("view").replaceChildren(main);
  if (!me && key.get()) {
    try { me = await api.get("/me"); } catch (error) { key.clear(); }
  }
  updateChrome();
  if (!me) { signInView(main, message); return; }
  // "#/case/<id>": a view and its argument (the id, URI-encoded).
  const [name, ...rest] = location.hash.replace(/^#\//, "").split("/");
  let arg = null;
  try { arg = rest.length ? decodeURIComponent(rest.join("/")) : null; } catch { arg = rest.join("/"); } // a malformed %-escape
  const view = VIEWS[name];
  if (!view || !me.actions.includes(view.action)) {
    const fallback = firstView();
    if (fallback !== "none" && name !== fallback) { location.hash = "#/" + fallback; return; }
    main.append(h("p", { class: "card" }, `Your role (${me.role}) has no pages here.`));
    return;
  }
  showError(null);
  try {
    await view.render(main, me, arg);
  } catch (error) {
    showError(error);
  }
}

window.addEventListener("hashchange", () => render());
document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("facesearch:unauthorized", () =>
  signOut("Your key was refused (unknown or revoked). Sign in again."));
render();
