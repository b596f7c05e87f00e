// Calls to uBot's own API. The session is the HttpOnly cookie the browser sends by itself; every
// request that changes something carries the CSRF token from the readable ubot_csrf cookie.
const CSRF_COOKIE = "ubot_csrf";
const SAFE = new Set(["GET", "HEAD"]);

export class ApiError extends Error {
  constructor(status, body) {
    super(body.description || body.title || `HTTP ${status}`);
    this.status = status;
    this.title = body.title || "";
    this.field = body.field || null;
    this.column = body.column || null;
  }
}

function csrfToken() {
  const prefix = `${CSRF_COOKIE}=`;
  const found = document.cookie.split("; ").find((part) => part.startsWith(prefix));
  return found ? decodeURIComponent(found.slice(prefix.length)) : "";
}

/** One request; resolves to {status, data, headers} (data null for 204 and 304), rejects with ApiError. */
export async function api(method, path, body, headers = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (!SAFE.has(method)) sent["X-CSRF-Token"] = csrfToken();
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store", // our own If-None-Match decides; the browser's cache must not answer
    });
  } catch {
    throw new ApiError(0, { title: "Offline", description: "uBot cannot be reached; check that it runs." });
  }
  if (response.status === 204 || response.status === 304) {
    return { status: response.status, data: null, headers: response.headers };
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data, headers: response.headers };
}
