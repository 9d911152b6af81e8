// The drop zone, the upload options and one card per file: upload progress from XHR events,
// then parse progress from the job's event stream, until the job is done.

import { ApiError, UploadStopped, followJob, upload } from "./api.js";
import { badge, fill, h, say, uniqueId } from "./dom.js";
import { bytes, duration, percent, plural, rate, runningLine } from "./format.js";

// Event streams hold a connection each; browsers allow six per host over HTTP/1.1, and the
// jobs table, an upload and the job view need theirs too.
const MAX_FOLLOWED = 3;
const RATE_WINDOW_MS = 3000;
const FINAL_STATES = new Set(["succeeded", "failed", "cancelled", "refused", "stopped", "deleted"]);

class Slots {
  #free;
  #waiting = [];

  constructor(count) {
    this.#free = count;
  }

  async take() {
    if (this.#free > 0) {
      this.#free -= 1;
      return;
    }
    await new Promise((resolve) => this.#waiting.push(resolve));
  }

  give() {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free += 1;
  }
}

/** Bytes per second over the last few seconds of (time, bytes) samples. */
class RateMeter {
  #samples = [];

  add(bytesDone) {
    const now = performance.now();
    this.#samples.push([now, bytesDone]);
    while (this.#samples.length > 2 && now - this.#samples[0][0] > RATE_WINDOW_MS) {
      this.#samples.shift();
    }
    const [firstTime, firstBytes] = this.#samples[0];
    const seconds = (now - firstTime) / 1000;
    return seconds > 0 ? (bytesDone - firstBytes) / seconds : NaN;
  }
}

/** The options form as POST /jobs form fields, or an error message. */
function readOptions(form) {
  const fields = form.elements;
  if (!form.checkValidity()) {
    form.reportValidity();
    return { error: "Check the upload options: a value is missing or out of range." };
  }
  const options = {
    format: fields.format.value,
    header: fields.header.checked ? "true" : "false",
    encoding: fields.encoding.value.trim() || "auto",
    max_errors: String(Number.parseInt(fields.max_errors.value, 10)),
  };
  let delimiter = fields.delimiter.value;
  if (delimiter === "other") {
    delimiter = fields.delimiter_other.value;
    if (delimiter.length !== 1) return { error: "Type the other delimiter: one character." };
  }
  if (delimiter) options.delimiter = delimiter;
  return { options };
}

class UploadCard {
  constructor(file, options, hooks) {
    this.file = file;
    this.options = options;
    this.hooks = hooks;
    this.meter = new RateMeter();
    this.handle = null;
    const id = uniqueId("upload");
    this.uploadBar = h("progress", {
      id: `${id}-sent`,
      max: 100,
      value: 0,
      "aria-label": `Upload of ${file.name}`,
    });
    this.uploadText = h("span", { class: "meter-text", text: "Waiting for the uploads before it" });
    this.parseBar = h("progress", { id: `${id}-parsed`, max: 100, "aria-label": `Parse of ${file.name}` });
    this.parseText = h("span", { class: "meter-text" });
    this.parseMeter = h(
      "div",
      { class: "meter", hidden: true },
      h("label", { for: this.parseBar.id, text: "Parse" }),
      this.parseBar,
      this.parseText,
    );
    this.badge = h("span", { class: "card-badge" }, badge("waiting"));
    this.stopButton = h("button", {
      type: "button",
      class: "quiet small",
      text: "Stop",
      "aria-label": `Stop uploading ${file.name}`,
      onclick: () => this.stop(),
    });
    this.status = h("p", { class: "card-status", hidden: true });
    this.element = h(
      "li",
      { class: "upload-card", dataset: { state: "waiting" } },
      h(
        "div",
        { class: "card-head" },
        h("span", { class: "file-name", text: file.name, title: file.name }),
        h("span", { class: "file-size", text: bytes(file.size) }),
        this.badge,
        this.stopButton,
      ),
      h(
        "div",
        { class: "meter" },
        h("label", { for: this.uploadBar.id, text: "Upload" }),
        this.uploadBar,
        this.uploadText,
      ),
      this.parseMeter,
      this.status,
    );
  }

  get finished() {
    return FINAL_STATES.has(this.element.dataset.state);
  }

  setState(state, label = state) {
    this.element.dataset.state = state;
    fill(this.badge, badge(label));
    this.stopButton.hidden = state !== "waiting" && state !== "uploading";
    if (this.finished) this.hooks.onFinished();
  }

  stop() {
    if (this.handle) this.handle.stop();
    else if (this.element.dataset.state === "waiting") {
      this.stopped = true;
      this.setState("stopped");
      this.uploadText.textContent = "Not sent";
    }
  }

  showUpload(sent, total) {
    const share = total > 0 ? (sent / total) * 100 : 100;
    const speed = this.meter.add(sent);
    const left = speed > 0 ? (total - sent) / speed : NaN;
    const text =
      sent >= total
        ? `${bytes(total)} sent`
        : `${bytes(sent)} of ${bytes(total)} · ${rate(speed)} · ${duration(left)} left`;
    this.uploadBar.value = share;
    this.uploadBar.setAttribute("aria-valuetext", `${percent(share)}, ${text}`);
    this.uploadText.textContent = text;
  }

  showJob(job) {
    const progress = job.progress || {};
    const state = job.done ? job.status : job.status === "queued" ? "queued" : "parsing";
    this.setState(state, job.status);
    if (job.status === "queued") {
      this.parseBar.removeAttribute("value"); // indeterminate until it starts
      this.parseText.textContent = "Queued";
      return;
    }
    const share = job.status === "succeeded" ? 100 : Math.min(progress.percent || 0, 100);
    this.parseBar.value = share;
    let text;
    if (job.status === "running") {
      text = runningLine(progress, share);
    } else if (job.status === "succeeded") {
      text = [percent(100), plural(job.result?.rows ?? progress.rows_done ?? 0, "row")].join(" · ");
    } else if (job.status === "failed") {
      text = `Failed at ${percent(share)}`;
    } else {
      text = `Cancelled at ${percent(share)}`;
    }
    if (progress.rows_failed) text += ` · ${plural(progress.rows_failed, "failed row")}`;
    this.parseBar.setAttribute("aria-valuetext", `${percent(share)}, ${text}`);
    this.parseText.textContent = text;
    if (job.status === "failed" && job.error) {
      this.showStatus(`${job.error.code}: ${job.error.message}`, job);
    }
  }

  showStatus(message, job = null) {
    this.status.hidden = false;
    fill(
      this.status,
      job ? h("a", { href: `#/jobs/${job.id}`, text: "Open the job" }) : null,
      job && message ? " · " : null,
      message,
    );
  }

  async send() {
    if (this.stopped) return null;
    this.setState("uploading");
    this.uploadText.textContent = "Starting";
    this.handle = upload(this.file, this.options, (sent, total) => this.showUpload(sent, total));
    try {
      const job = await this.handle.done;
      this.handle = null;
      this.showUpload(this.file.size, this.file.size);
      this.parseMeter.hidden = false;
      this.showStatus("", job);
      this.showJob(job);
      this.hooks.onAccepted(job);
      return job;
    } catch (error) {
      this.handle = null;
      if (error instanceof UploadStopped) {
        this.setState("stopped");
        this.uploadText.textContent = "Stopped; nothing was kept";
      } else {
        this.setState("refused", error.status ? String(error.status) : "failed");
        this.showStatus(error instanceof ApiError ? error.message : String(error));
      }
      return null;
    }
  }

  async follow(job, slots) {
    if (job.done) return;
    await slots.take();
    try {
      const last = await followJob(job.id, (next) => this.showJob(next));
      if (last === null) {
        this.setState("deleted");
        this.parseText.textContent = "The job was deleted";
        this.showStatus("");
      }
    } catch (error) {
      this.showStatus(`Lost track of the job: ${error.message}`, job);
    } finally {
      slots.give();
      this.hooks.onFinished();
    }
  }
}

/** Wire the upload panel. `hooks.onAccepted(job)` and `hooks.onFinished()` tell the rest. */
export function setUpUploads(hooks) {
  const form = document.getElementById("upload-options");
  const zone = document.getElementById("drop-zone");
  const input = document.getElementById("file-input");
  const list = document.getElementById("uploads");
  const empty = document.getElementById("uploads-empty");
  const clear = document.getElementById("clear-uploads");
  const optionsError = document.getElementById("options-error");
  const otherField = document.getElementById("opt-delimiter-other-field");
  const otherInput = document.getElementById("opt-delimiter-other");
  const slots = new Slots(MAX_FOLLOWED);
  const cards = [];
  let queue = Promise.resolve();

  const refreshList = () => {
    empty.hidden = cards.length > 0;
    clear.hidden = !cards.some((card) => card.finished);
  };
  const cardHooks = {
    onAccepted: (job) => hooks.onAccepted(job),
    onFinished: () => {
      refreshList();
      hooks.onFinished();
    },
  };

  form.elements.delimiter.addEventListener("change", () => {
    const other = form.elements.delimiter.value === "other";
    otherField.hidden = !other;
    otherInput.required = other;
    if (other) otherInput.focus();
  });
  form.addEventListener("submit", (event) => event.preventDefault());

  const accept = (fileList) => {
    const files = [...fileList];
    if (files.length === 0) return;
    const { options, error } = readOptions(form);
    say(optionsError, error);
    if (error) return;
    for (const file of files) {
      const card = new UploadCard(file, options, cardHooks);
      cards.push(card);
      list.prepend(card.element);
      // One upload at a time: they share the line, so each finishes sooner.
      queue = queue.then(async () => {
        const job = await card.send();
        if (job) card.follow(job, slots);
      });
    }
    refreshList();
  };

  input.addEventListener("change", () => {
    accept(input.files);
    input.value = "";
  });

  const dragging = (on) => zone.classList.toggle("dragging", on);
  zone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    dragging(true);
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
    dragging(true);
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) dragging(false);
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    dragging(false);
    accept(event.dataTransfer?.files || []);
  });
  // A file dropped beside the zone must not make the browser leave the page to show it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (!zone.contains(event.target)) event.preventDefault();
    });
  }

  clear.addEventListener("click", () => {
    for (const card of cards.filter((each) => each.finished)) {
      card.element.remove();
      cards.splice(cards.indexOf(card), 1);
    }
    refreshList();
  });
  refreshList();
}
