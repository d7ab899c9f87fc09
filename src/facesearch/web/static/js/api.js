// The one place that talks to the /v1 API. The key lives in sessionStorage: it survives a reload
// of the tab but not closing it, and it is never written into the page or a URL.
const KEY = "facesearch.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

async function request(method, path, { body, query, raw } = {}) {
  const url = new URL("/v1" + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Authorization: "Bearer " + (key.get() || "") };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(url, { method, headers, body: payload, cache: "no-store" });
  if (!response.ok) {
    // Every API error is {"error": {"code", "message"}}; anything else (a proxy's page) gets a generic one.
    let code = "http_" + response.status;
    let message = response.statusText || "request failed";
    try {
      const data = await response.json();
      if (data && data.error) ({ code, message } = data.error);
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, code, message);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

export const api = {
  get: (path, query) => request("GET", path, { query }),
  post: (path, body) => request("POST", path, { body }),
  put: (path, body) => request("PUT", path, { body }),
  del: (path, query) => request("DELETE", path, { query }),
  // A file the API streams (the audit export, a case report): saved through a blob: URL, since a plain link
  // cannot send the key. Without a filename, the one the server names (Content-Disposition). Resolves to the
  // response's headers (a case report's SHA-256 and audit number are in them).
  async download(path, filename, query) {
    const response = await request("GET", path, { query, raw: true });
    const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const url = URL.createObjectURL(await response.blob());
    const link = Object.assign(document.createElement("a"), { href: url, download: filename || (named && named[1]) || "download" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    return response.headers;
  },
  // Thumbnails need the key too, which an <img src> cannot send: fetch them and show a blob: URL.
  async imageUrl(path, query) {
    const response = await request("GET", path, { query, raw: true });
    return URL.createObjectURL(await response.blob());
  },
  // An image and its response headers (the whole photo of a face names the face's box and date in them).
  async image(path, query) {
    const response = await request("GET", path, { query, raw: true });
    return { url: URL.createObjectURL(await response.blob()), headers: response.headers };
  },
};
