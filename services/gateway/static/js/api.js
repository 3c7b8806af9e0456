// Calls to the HTTP API: the bearer token, problem+json errors, and no surprise from a proxy's
// HTML error page (the content type is checked before any body is parsed as JSON).

const TOKEN_KEY = "digits.token";

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}
export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage refused (private mode): the token lives in the input only */ }
}

// A UUID v4 from getRandomValues, which (unlike crypto.randomUUID) also exists on plain-HTTP
// origins other than localhost, such as a cluster's ingress.
export function newIdempotencyKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map(x => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// Friendlier words for the problem types a person meets on this page.
const FRIENDLY = {
  "not-a-digit": "That does not look like a digit. Draw it large and clear, one digit per mark, or try another image.",
  "no-digit-found": "No digit was found: the pad or the image looks empty, or the strokes are too faint.",
  "too-many-digits": "Too many digits in one image: at most 12, side by side.",
  "authentication-required": "This needs a bearer token: enter yours at the top of the page.",
  "invalid-token": "The bearer token was not accepted: check it, or ask the admin for a new one.",
  "forbidden": "Your token may not do that.",
  "recognition-not-found": "That recognition is not there any more, or it is not yours.",
  "not-an-image": "That file is not an image this service reads (PNG, JPEG, GIF, BMP, TIFF or WebP).",
  "image-too-large": "The image is too large.",
  "request-too-large": "The upload is too large.",
  "empty-image": "The file is empty.",
  "corrupt-image": "The image file is damaged.",
  "overloaded": "The service is busy right now. Try again in a few seconds.",
  "dependency-unavailable": "A part of the service is unavailable right now. Try again in a few seconds.",
  "dependency-failed": "A part of the service failed. Try again; if it goes on, tell its operators.",
  "internal-error": "Something went wrong on the server. Try again; if it goes on, tell its operators.",
};

export class ApiError extends Error {
  constructor(status, problem, message) {
    super(message);
    this.status = status;
    this.problem = problem; // the problem+json body, or null
    this.slug = problem && typeof problem.type === "string" ? problem.type.replace(/^.*\/problems\//, "") : "";
  }
  // No such route on this server (yet): 404 not-found, or a 404 that is not this API's own JSON.
  get missingRoute() {
    return this.status === 404 && (this.slug === "not-found" || !this.problem);
  }
  get friendly() {
    return FRIENDLY[this.slug] || this.message;
  }
  get detail() {
    return this.problem && this.problem.detail ? String(this.problem.detail) : "";
  }
}

function isJson(res) {
  const type = (res.headers.get("content-type") || "").toLowerCase();
  return type.includes("application/json") || type.includes("+json");
}

// fetch with the token; returns the Response (ok) or throws ApiError.
export async function request(path, { method = "GET", body, json, headers = {}, auth = true } = {}) {
  const h = new Headers(headers);
  const token = getToken();
  if (auth && token) h.set("Authorization", `Bearer ${token}`);
  if (json !== undefined) { h.set("Content-Type", "application/json"); body = JSON.stringify(json); }
  h.set("Accept", h.get("Accept") || "application/json, application/problem+json");
  let res;
  try {
    res = await fetch(path, { method, body, headers: h, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, null, "Could not reach the server: check your connection and try again.");
  }
  if (res.ok) return res;
  let problem = null;
  if (isJson(res)) {
    try { problem = await res.json(); } catch { problem = null; }
  } else {
    try { await res.text(); } catch { /* the body does not matter */ }
  }
  const text = problem && problem.title
    ? `${problem.title}${problem.detail ? `: ${problem.detail}` : ""}`
    : `The server answered ${res.status} ${res.statusText || ""}`.trim() + (problem ? "" : " (not from this API: a proxy in between?)");
  throw new ApiError(res.status, problem, text);
}

// The JSON of a successful answer; a 2xx that is not JSON is an error too.
export async function requestJson(path, options) {
  const res = await request(path, options);
  if (!isJson(res)) throw new ApiError(res.status, null, `Expected JSON from ${path}, got ${res.headers.get("content-type") || "nothing"}`);
  return res.json();
}

// Puts a problem into an element: the friendly sentence, and the server's detail beneath it.
export function showProblem(el, err, prefix = "") {
  el.textContent = "";
  const main = document.createElement("strong");
  main.textContent = prefix + (err instanceof ApiError ? err.friendly : String(err && err.message || err));
  el.append(main);
  if (err instanceof ApiError && err.detail && err.friendly !== err.message) {
    const why = document.createElement("span");
    why.className = "why";
    why.textContent = err.detail;
    el.append(why);
  }
  el.hidden = false;
}

export function clearProblem(el) { el.hidden = true; el.textContent = ""; }

// Runs an action with its controls disabled and a busy status: a second click while a request
// is in flight does nothing.
export async function busy(controls, statusEl, message, action) {
  if (controls.some(c => c.disabled && c.dataset.busy === "1")) return undefined;
  const wasDisabled = controls.map(c => c.disabled);
  controls.forEach(c => { c.disabled = true; c.dataset.busy = "1"; });
  if (statusEl) { statusEl.textContent = message; statusEl.classList.add("busy"); }
  document.body.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    controls.forEach((c, i) => { c.disabled = wasDisabled[i]; delete c.dataset.busy; });
    if (statusEl) statusEl.classList.remove("busy");
    document.body.removeAttribute("aria-busy");
  }
}

export const pct = p => {
  const v = Number(p) * 100;
  if (!Number.isFinite(v)) return "–";
  if (v > 0 && v < 0.1) return "<0.1%";
  if (v < 100 && v > 99.9) return ">99.9%";
  return `${v.toFixed(1)}%`;
};
