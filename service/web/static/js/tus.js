// A small tus 1.0.0 client for the page's large uploads: create the upload, send it in
// chunks with PATCH, and after a dropped connection ask HEAD for the offset and go on from
// there, by itself. XMLHttpRequest is used for its upload progress events.

const TUS_VERSION = "1.0.0";
export const CHUNK_BYTES = 16 * 1024 * 1024;
// Pauses before the tries after a failure: about a minute and a half in all.
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000, 30000];

/** The tus request failed with this HTTP status (0: the connection was lost). */
export class TusError extends Error {
  constructor(status, text, headers) {
    super(`HTTP ${status}`);
    this.name = "TusError";
    this.status = status;
    this.text = text;
    this.headers = headers;
  }
}

export class TusStopped extends Error {
  constructor() {
    super("Upload stopped");
    this.name = "TusStopped";
  }
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Upload-Metadata from an object of strings. */
export function encodeMetadata(values) {
  return Object.entries(values)
    .map(([key, value]) => `${key} ${base64(String(value))}`)
    .join(",");
}

/** The job id in a `Link: </jobs/{id}>; rel="job"` header, or null. */
export function jobIdOfLink(link) {
  const match = /<\/jobs\/([^>]+)>\s*;\s*rel="?job"?/.exec(link || "");
  return match ? decodeURIComponent(match[1]) : null;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Upload `file` with tus. `headers()` gives extra request headers (the API key);
 * `onProgress(sent, total)` follows the bytes; `retryable(error)` says whether a failed
 * request is worth trying again (by default: a lost connection, 409, 423, 5xx).
 * Returns {done, stop}: `done` resolves with the job id once the last byte is stored.
 */
export function tusUpload(file, { endpoint, metadata, headers, onProgress, retryable }) {
  let xhr = null;
  let stopped = false;
  let location = null;

  const send = (method, url, { body = null, extra = {}, progress = null } = {}) =>
    new Promise((resolve, reject) => {
      if (stopped) {
        reject(new TusStopped());
        return;
      }
      xhr = new XMLHttpRequest();
      xhr.open(method, url);
      const all = { "Tus-Resumable": TUS_VERSION, ...headers(), ...extra };
      for (const [name, value] of Object.entries(all)) xhr.setRequestHeader(name, value);
      if (progress) xhr.upload.addEventListener("progress", (event) => progress(event.loaded));
      xhr.addEventListener("load", () => {
        const answer = xhr;
        const header = (name) => answer.getResponseHeader(name);
        if (answer.status >= 200 && answer.status < 300) resolve(header);
        else reject(new TusError(answer.status, answer.responseText, header));
      });
      xhr.addEventListener("error", () => reject(new TusError(0, "", () => null)));
      xhr.addEventListener("abort", () => reject(stopped ? new TusStopped() : new TusError(0, "", () => null)));
      xhr.send(body);
    });

  const worthRetrying =
    retryable ||
    ((error) => error.status === 0 || error.status === 409 || error.status === 423 || error.status >= 500);

  const done = (async () => {
    const created = await send("POST", endpoint, {
      extra: { "Upload-Length": String(file.size), "Upload-Metadata": encodeMetadata(metadata) },
    });
    location = created("Location");
    let offset = 0;
    let jobId = jobIdOfLink(created("Link"));
    let failures = 0;
    while (jobId === null) {
      try {
        if (failures > 0) {
          // After a failure the server knows best what it kept.
          const known = await send("HEAD", location);
          offset = Number.parseInt(known("Upload-Offset"), 10);
          jobId = jobIdOfLink(known("Link"));
          if (jobId !== null) break;
        }
        const end = Math.min(offset + CHUNK_BYTES, file.size);
        const start = offset;
        const answered = await send("PATCH", location, {
          body: file.slice(start, end),
          extra: {
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": String(start),
          },
          progress: (loaded) => onProgress(start + loaded, file.size),
        });
        offset = Number.parseInt(answered("Upload-Offset"), 10);
        jobId = jobIdOfLink(answered("Link"));
        onProgress(offset, file.size);
        failures = 0;
      } catch (error) {
        if (error instanceof TusStopped) throw error;
        if (!worthRetrying(error) || failures >= RETRY_DELAYS_MS.length) throw error;
        await sleep(RETRY_DELAYS_MS[failures]);
        failures += 1;
      }
    }
    return jobId;
  })();

  return {
    done,
    /** Stop sending, and remove what the server kept (tus termination). */
    async stop() {
      stopped = true;
      xhr?.abort();
      if (location) {
        const sent = { "Tus-Resumable": TUS_VERSION, ...headers() };
        await fetch(location, { method: "DELETE", headers: sent }).catch(() => {});
      }
    },
    get location() {
      return location;
    },
  };
}
