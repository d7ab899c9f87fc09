// The page's error banner. A 401 means the key stopped working (revoked, or never valid): app.js
// listens for "facesearch:unauthorized" and signs out, so views need not know about sign-in.
// Issue 13: an error is shown where the user is looking: the banner is scrolled into view and focused
// (a "no face found" shown above a scrolled phone screen left the page looking blank).
import { ApiError } from "./api.js";

export function showError(error) {
  const banner = document.getElementById("error");
  if (!error) { banner.hidden = true; banner.textContent = ""; return; }
  if (error instanceof ApiError && error.status === 401) {
    window.dispatchEvent(new CustomEvent("facesearch:unauthorized"));
    return;
  }
  banner.textContent = error.message || String(error);
  banner.hidden = false;
  banner.scrollIntoView({ block: "start" });
  banner.focus({ preventScroll: true });
}
