// The page's error banner. A 401 means the key stopped working (revoked, or never valid): app.js
// listens for "facesearch:unauthorized" and signs out, so views need not know about sign-in.
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
}
