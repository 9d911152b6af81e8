// The service's public HTTP API, as the page uses it. The API key (when the service wants
// one) lives in this tab's sessionStorage and travels only in `Authorization: Bearer`.

import { EventStreamParser } from "./sse.js";
import { TusError, TusStopped, tusUpload } from "./tus.js";

const KEY_ITEM = "ingest.apiKey";

/** An HTTP error, from a problem+json body when the service sent one. */
export class ApiError extends Error {
  constructor(status, title, detail = "") {
    super(detail ? `${title}: ${detail}` : title);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/** The upload was stopped by the person. */
export class UploadStopped extends Error {
  constructor() {
    super("Upload stopped");
    this.name = "UploadStopped";
  }
}

// ---- API keys -----------------------------------------------------------------------------

let promptForKey = async () => null;
let pendingPrompt = null;
let declined = false;
let authenticated = false;
const keyListeners = new Set();

/** How the page asks for a key: `(reason) => Promise<string | null>`. */
export function setKeyPrompt(prompt) {
  promptForKey = prompt;
}

/** Called with no argument whenever the key is set, forgotten or declined. */
export function onKeyChange(listener) {
  keyListeners.add(listener);
}

export function storedKey() {
  try {
    return sessionStorage.getItem(KEY_ITEM);
  } catch {
    return null;
  }
}

/** Whether the page holds a key, or was told it needs one and has none. */
export function keyState() {
  if (storedKey()) return "set";
  return declined ? "needed" : "none";
}

function setKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
  for (const listener of keyListeners) listener();
}

export function forgetKey() {
  setKey(null);
}

/**
 * Ask for a key once, however many requests were refused meanwhile. `reason` is shown;
 * `explicit` asks even after the person declined earlier.
 */
export function askForKey(reason, { explicit = false } = {}) {
  if (declined && !explicit) return Promise.resolve(null);
  if (!pendingPrompt) {
    pendingPrompt = promptForKey(reason).then((key) => {
      pendingPrompt = null;
      declined = !key;
      if (key) setKey(key);
      else for (const listener of keyListeners) listener();
      return key;
    });
  }
  return pendingPrompt;
}

/** After a 401 for `sentKey`: a key to try next, or null if there is none. */
async function keyAfterRefusal(sentKey) {
  const current = storedKey();
  if (current && current !== sentKey) return current; // another request already got one
  return askForKey(
    sentKey
      ? "The service refused that API key. Enter another one."
      : "This service needs an API key.",
  );
}

function keyRequired() {
  return new ApiError(401, "An API key is required", "Use the API key button to enter one.");
}

// ---- Requests -----------------------------------------------------------------------------

function withKey(init, key) {
  const headers = new Headers(init.headers);
  if (key) headers.set("Authorization", `Bearer ${key}`);
  return { ...init, headers };
}

/** fetch() that sends the key and, on 401, asks for one and tries again. */
export async function request(path, init = {}) {
  for (;;) {
    const sent = storedKey();
    const response = await fetch(path, withKey(init, sent));
    if (response.status !== 401) {
      authenticated = true;
      return response;
    }
    await response.body?.cancel();
    if (!(await keyAfterRefusal(sent))) throw keyRequired();
  }
}

/** The ApiError a non-2xx response stands for. */
export async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      const problem = await response.json();
      return new ApiError(response.status, problem.title || response.statusText, problem.detail);
    } catch {
      // fall through: a body that is not the JSON it claims to be
    }
  }
  return new ApiError(response.status, response.statusText || `HTTP ${response.status}`);
}

/** A JSON request: the parsed body, null for 204, an ApiError otherwise. */
export async function json(path, init = {}) {
  const response = await request(path, {
    ...init,
    headers: { Accept: "application/json", ...init.headers },
  });
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

export const jobs = {
  list: (url) => json(url),
  get: (id) => json(`/jobs/${encodeURIComponent(id)}`),
  cancel: (id) => json(`/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" }),
  remove: (id) => json(`/jobs/${encodeURIComponent(id)}`, { method: "DELETE" }),
  errors: (url) => json(url),
  resultUrl: (id) => `/jobs/${encodeURIComponent(id)}/result`,
};

// ---- Upload -------------------------------------------------------------------------------

// Files this large go through /uploads (tus): a dropped connection resumes where it broke.
export const RESUMABLE_FROM_BYTES = 8 * 1024 * 1024;

/**
 * Upload one file: as multipart/form-data with XMLHttpRequest (whose upload progress events
 * fetch() lacks), or, from RESUMABLE_FROM_BYTES on, as a resumable upload.
 * `onProgress(sent, total)` follows the body. Returns {done, stop}: `done` resolves with the
 * job, or rejects with an ApiError or UploadStopped.
 */
export function upload(file, options, onProgress) {
  if (file.size >= RESUMABLE_FROM_BYTES) return resumableUpload(file, options, onProgress);
  return multipartUpload(file, options, onProgress);
}

function keyHeaders() {
  const key = storedKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function tusProblem(error) {
  if (error.status === 0) {
    return new ApiError(0, "Upload failed", "The connection to the service was lost.");
  }
  const problem = parseJson(error.text);
  return new ApiError(error.status, problem?.title || `HTTP ${error.status}`, problem?.detail || "");
}

/** tus: the options travel in Upload-Metadata; stopping removes what the service kept. */
function resumableUpload(file, options, onProgress) {
  let handle = null;
  let stopped = false;
  const done = (async () => {
    // Learn whether a key is needed before creating an upload the service would refuse.
    if (!authenticated) await json("/jobs?limit=1");
    if (stopped) throw new UploadStopped();
    const metadata = { filename: file.name, ...options };
    if (file.type) metadata.filetype = file.type;
    handle = tusUpload(file, { endpoint: "/uploads", metadata, headers: keyHeaders, onProgress });
    let jobId;
    try {
      jobId = await handle.done;
    } catch (error) {
      if (error instanceof TusStopped) throw new UploadStopped();
      if (error instanceof TusError) throw tusProblem(error);
      throw error;
    }
    return jobs.get(jobId);
  })();
  return {
    done,
    stop() {
      stopped = true;
      handle?.stop();
    },
  };
}

function multipartUpload(file, options, onProgress) {
  let xhr = null;
  let stopped = false;

  const sendOnce = () =>
    new Promise((resolve, reject) => {
      const sent = storedKey();
      xhr = new XMLHttpRequest();
      // Options go in the query string, which the service reads for every kind of body.
      xhr.open("POST", `/jobs?${new URLSearchParams(options)}`);
      xhr.setRequestHeader("Accept", "application/json");
      if (sent) xhr.setRequestHeader("Authorization", `Bearer ${sent}`);
      xhr.upload.addEventListener("progress", (event) => {
        onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
      });
      xhr.upload.addEventListener("load", (event) => {
        onProgress(event.total || file.size, event.total || file.size);
      });
      xhr.addEventListener("load", () => resolve({ xhr, sent }));
      xhr.addEventListener("error", () =>
        reject(new ApiError(0, "Upload failed", "The connection to the service was lost.")),
      );
      xhr.addEventListener("abort", () => reject(new UploadStopped()));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });

  const done = (async () => {
    // Learn whether a key is needed before sending a body the service would refuse.
    if (!authenticated) await json("/jobs?limit=1");
    for (;;) {
      if (stopped) throw new UploadStopped();
      const { xhr: answered, sent } = await sendOnce();
      if (answered.status === 401) {
        if (!(await keyAfterRefusal(sent))) throw keyRequired();
        continue;
      }
      const body = parseJson(answered.responseText);
      if (answered.status === 200 || answered.status === 202) return body;
      throw new ApiError(
        answered.status,
        body?.title || answered.statusText || `HTTP ${answered.status}`,
        body?.detail || "",
      );
    }
  })();

  return {
    done,
    stop() {
      stopped = true;
      xhr?.abort();
    },
  };
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// ---- Following a job ----------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follow a job's event stream (`GET /jobs/{id}/events`, read with fetch so the key stays in
 * a header) until it ends. `onJob` gets the job at every event. Resolves with the finished
 * job, or null if the job was deleted meanwhile; reconnects if the stream breaks.
 */
export async function followJob(id, onJob, signal) {
  for (let attempt = 1; ; attempt += 1) {
    const response = await request(`/jobs/${encodeURIComponent(id)}/events`, {
      headers: { Accept: "text/event-stream" },
      cache: "no-store",
      signal,
    });
    if (response.status === 404) return null;
    if (!response.ok) throw await problemOf(response);
    const parser = new EventStreamParser();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(value)) {
          if (event.event === "deleted") return null;
          const job = JSON.parse(event.data);
          onJob(job);
          if (event.event === "done") return job;
        }
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      // The connection broke: connect again, the stream starts with the current state.
    } finally {
      reader.cancel().catch(() => {});
    }
    await sleep(Math.min(attempt, 5) * 1000);
  }
}

// ---- Reading results ----------------------------------------------------------------------

/** A JSON number kept as the text the service wrote: 9.50 stays 9.50, big integers stay exact. */
export class NumberText {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}

function keepNumberText(_key, value, context) {
  if (typeof value === "number") return new NumberText(context?.source ?? String(value));
  return value;
}

/** One NDJSON line as a record, its numbers as NumberText. */
export function parseRecord(line) {
  return JSON.parse(line, keepNumberText);
}

/**
 * The first `limit` lines of an NDJSON resource, read from the stream; the download stops
 * there. `more` says whether the resource goes on.
 */
export async function firstLines(path, limit, signal) {
  const response = await request(path, { headers: { Accept: "application/x-ndjson" }, signal });
  if (!response.ok) throw await problemOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const lines = [];
  let buffer = "";
  let more = true;
  try {
    while (lines.length < limit) {
      const { value, done } = await reader.read();
      if (done) {
        if (buffer.trim()) lines.push(buffer);
        more = false;
        break;
      }
      buffer += value;
      let end = buffer.indexOf("\n");
      while (end >= 0 && lines.length < limit) {
        if (end > 0) lines.push(buffer.slice(0, end));
        buffer = buffer.slice(end + 1);
        end = buffer.indexOf("\n");
      }
    }
    if (more && lines.length >= limit && buffer === "") {
      // Exactly `limit` lines may also be the whole result: look one read further.
      const { value, done } = await reader.read();
      more = !done && value.length > 0;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return { lines, more };
}

/**
 * Save a resource with the key in a header: a link cannot carry one, so the body is fetched
 * into memory as a blob and handed to the browser's download.
 */
export async function download(path, fallbackName) {
  const response = await request(path);
  if (!response.ok) throw await problemOf(response);
  // The name the service gives the file, as a plain link would save it.
  const disposition = response.headers.get("content-disposition") || "";
  const fileName = /filename="([^"]+)"/.exec(disposition)?.[1] || fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: fileName });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
