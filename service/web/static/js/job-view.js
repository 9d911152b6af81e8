// One job in detail: the file, the detected format and dialect, the columns, a preview of the
// first records, the row errors and the result's download.

import { cancelJob, deleteJob } from "./actions.js";
import {
  NumberText,
  download,
  firstLines,
  followJob,
  jobs,
  parseRecord,
  storedKey,
} from "./api.js";
import { badge, fill, h, say, uniqueId } from "./dom.js";
import { bytes, count, delimiter, percent, plural, runningLine, when } from "./format.js";

const PREVIEW_RECORDS = 100;
const ERRORS_PER_PAGE = 50;
const LONG_TEXT = 80;

function fact(term, ...value) {
  return [h("dt", { text: term }), h("dd", {}, ...value)];
}

const NUMERIC = new Set(["integer", "number"]);

/**
 * A table cell showing a value as its JSON type: numbers right-aligned, null as null. In a
 * numeric column a null is right-aligned too, where the numbers are.
 */
function valueCell(value, columnType) {
  const align = NUMERIC.has(columnType) ? " align-end" : "";
  if (value === undefined) {
    return h("td", { class: `value missing${align}`, title: "no such key" }, "");
  }
  if (value === null) return h("td", { class: `value null${align}` }, h("span", { text: "null" }));
  if (value instanceof NumberText) return h("td", { class: "value num", text: value.text });
  if (typeof value === "boolean") return h("td", { class: "value bool", text: String(value) });
  if (typeof value === "string") {
    if (value === "") return h("td", { class: "value empty", title: "empty string", text: '""' });
    const long = value.length > LONG_TEXT;
    return h("td", { class: "value str", title: long ? value : null, text: value });
  }
  const text = JSON.stringify(value, (_key, each) =>
    each instanceof NumberText ? Number(each.text) : each,
  );
  return h("td", { class: "value json", title: text }, h("code", { text }));
}

export class JobView {
  #controller = null;

  /** `hooks.onDeleted(id)` and `hooks.onChanged()` tell the rest of the page. */
  constructor(section, hooks) {
    this.section = section;
    this.hooks = hooks;
    this.id = null;
  }

  close() {
    this.#controller?.abort();
    this.#controller = null;
    this.id = null;
    this.section.hidden = true;
    fill(this.section);
  }

  async open(id) {
    if (this.id === id) return;
    this.close();
    this.id = id;
    this.#controller = new AbortController();
    const signal = this.#controller.signal;
    this.section.hidden = false;
    fill(this.section, h("p", { class: "hint", text: "Loading the job…" }));
    try {
      let job = await jobs.get(id);
      if (signal.aborted) return;
      this.#build(job);
      this.section.scrollIntoView({ block: "start" });
      this.title.focus({ preventScroll: true });
      if (!job.done) {
        job = await followJob(id, (next) => signal.aborted || this.#update(next), signal);
        if (signal.aborted) return;
        if (job === null) {
          this.#gone();
          return;
        }
        this.#update(job);
        this.hooks.onChanged();
      }
      await this.#details(job, signal);
    } catch (error) {
      if (signal.aborted) return;
      if (error.status === 404) this.#gone();
      else fill(this.section, h("p", { class: "problem", text: `Could not load the job: ${error.message}` }));
    }
  }

  #gone() {
    fill(
      this.section,
      h("h2", { id: "job-title", text: "Job not found" }),
      h("p", { text: "This job does not exist, or it was deleted." }),
      h("p", {}, h("a", { href: "#/", text: "Back to the jobs" })),
    );
  }

  #build(job) {
    this.job = job;
    this.title = h("h2", { id: "job-title", tabindex: "-1", text: job.file.name });
    this.badge = h("span", { class: "job-badge" });
    this.cancelButton = h("button", {
      type: "button",
      text: "Cancel job",
      onclick: () => this.#cancel(),
    });
    this.deleteButton = h("button", {
      type: "button",
      class: "danger-quiet",
      text: "Delete job",
      onclick: () => this.#delete(),
    });
    this.actionError = h("p", { class: "problem", role: "alert", hidden: true });
    this.facts = h("dl", { class: "facts" });
    const barId = uniqueId("job-progress");
    this.bar = h("progress", { id: barId, max: 100, "aria-label": `Parse of ${job.file.name}` });
    this.barText = h("span", { class: "meter-text" });
    this.progress = h(
      "div",
      { class: "meter job-meter" },
      h("label", { for: barId, text: "Parse" }),
      this.bar,
      this.barText,
    );
    this.problem = h("p", { class: "problem job-problem", hidden: true });
    this.downloadArea = h("div", { class: "download", hidden: true });
    this.columns = h("section", { class: "job-part", "aria-labelledby": "columns-title", hidden: true });
    this.preview = h("section", { class: "job-part", "aria-labelledby": "preview-title", hidden: true });
    this.errors = h("section", { class: "job-part", "aria-labelledby": "errors-title", hidden: true });
    fill(
      this.section,
      h(
        "div",
        { class: "section-head" },
        h("div", { class: "job-heading" }, this.title, this.badge),
        h(
          "div",
          { class: "job-actions" },
          this.cancelButton,
          this.deleteButton,
          h("a", { href: "#/", class: "button-like quiet", text: "Close" }),
        ),
      ),
      this.actionError,
      this.progress,
      this.problem,
      h("div", { class: "job-overview" }, h("div", {}, this.facts, this.downloadArea), this.columns),
      this.preview,
      this.errors,
    );
    this.#update(job);
  }

  #update(job) {
    this.job = job;
    fill(this.badge, badge(job.status));
    this.section.dataset.status = job.status;
    this.cancelButton.hidden = job.done;
    const progress = job.progress || {};
    const share = job.status === "succeeded" ? 100 : Math.min(progress.percent || 0, 100);
    if (job.status === "queued") this.bar.removeAttribute("value");
    else this.bar.value = share;
    let text;
    if (job.status === "queued") text = "Queued";
    else if (job.status === "running") {
      text = runningLine(progress, share);
    } else text = `${job.status} · ${percent(share)}`;
    this.barText.textContent = text;
    this.bar.setAttribute("aria-valuetext", text);
    this.progress.hidden = job.status === "succeeded";
    if (job.error) say(this.problem, `${job.error.code}: ${job.error.message}`);
    else say(this.problem, "");
    this.#facts(job);
  }

  #facts(job) {
    const result = job.result;
    const options = job.options || {};
    const dialect = result?.dialect;
    const items = [
      fact("File", job.file.name),
      fact("Size", h("span", { title: `${count(job.file.size)} bytes`, text: bytes(job.file.size) })),
      fact("SHA-256", h("code", { class: "hash", text: job.file.sha256 || "–" })),
      fact("Media type", job.file.media_type || "–"),
      fact("Format", job.format || (job.done ? "–" : "not detected yet")),
    ];
    if (result) {
      items.push(fact("Encoding", result.encoding || "–"));
      items.push(
        fact(
          "Dialect",
          dialect
            ? `delimiter ${delimiter(dialect.delimiter)} · quote ${dialect.quotechar ?? "none"} · ` +
                (dialect.header ? "header row" : "no header row")
            : "none (JSON)",
        ),
      );
      items.push(
        fact("Records", `${plural(result.rows, "record")} · ${plural(result.rows_failed, "failed row")}`),
      );
    }
    items.push(
      fact(
        "Options",
        [
          `format ${options.format ?? "auto"}`,
          `delimiter ${options.delimiter == null ? "detect" : delimiter(options.delimiter)}`,
          `header ${options.header === false ? "no" : "yes"}`,
          `encoding ${options.encoding ?? "auto"}`,
          `max errors ${count(options.max_errors ?? 1000)}`,
        ].join(" · "),
      ),
    );
    items.push(fact("Created", when(job.created_at)));
    if (job.started_at) items.push(fact("Started", when(job.started_at)));
    if (job.finished_at) items.push(fact("Finished", when(job.finished_at)));
    items.push(fact("Job id", h("code", { text: job.id })));
    fill(this.facts, items);
  }

  async #details(job, signal) {
    if (job.status === "succeeded") {
      this.#download(job);
      this.#columns(job);
      await this.#preview(job, signal);
    }
    if (signal.aborted) return;
    await this.#errors(job, `/jobs/${encodeURIComponent(job.id)}/errors?limit=${ERRORS_PER_PAGE}`, 0, signal);
  }

  #download(job) {
    const url = jobs.resultUrl(job.id);
    const name = `${uploadStem(job.file.name) || job.id}.ndjson`;
    const status = h("span", { class: "hint", role: "status" });
    const link = h("a", {
      href: url,
      download: name,
      class: "button-like primary",
      text: "Download the result",
      onclick: async (event) => {
        // A link cannot send the key: with one, fetch the file and save it from memory.
        if (!storedKey()) return;
        event.preventDefault();
        status.textContent = "Downloading…";
        try {
          await download(url, name);
          status.textContent = "";
        } catch (error) {
          status.textContent = `Download failed: ${error.message}`;
        }
      },
    });
    fill(
      this.downloadArea,
      link,
      " ",
      h("span", { class: "hint", text: `NDJSON, ${plural(job.result.rows, "record")}` }),
      " ",
      status,
    );
    this.downloadArea.hidden = false;
  }

  #columns(job) {
    const columns = job.result.columns || [];
    fill(
      this.columns,
      h("h3", { id: "columns-title", text: `Columns (${count(columns.length)})` }),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "columns-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col", text: "Name" }),
              h("th", { scope: "col", text: "Type" }),
              h("th", { scope: "col", class: "num", text: "Nulls" }),
            ),
          ),
          h(
            "tbody",
            {},
            columns.map((column) =>
              h(
                "tr",
                {},
                h("th", { scope: "row", text: column.name }),
                h("td", {}, h("span", { class: `type type-${column.type}`, text: column.type })),
                h("td", { class: "num", text: count(column.nulls) }),
              ),
            ),
          ),
        ),
      ),
    );
    this.columns.hidden = false;
  }

  async #preview(job, signal) {
    const heading = h("h3", { id: "preview-title", text: "Preview" });
    const note = h("p", { class: "hint", text: "Reading the first records…" });
    fill(this.preview, heading, note);
    this.preview.hidden = false;
    let lines;
    let more;
    try {
      ({ lines, more } = await firstLines(jobs.resultUrl(job.id), PREVIEW_RECORDS, signal));
    } catch (error) {
      if (!signal.aborted) note.textContent = `Could not read the result: ${error.message}`;
      return;
    }
    if (signal.aborted) return;
    const records = lines.map(parseRecord);
    const names = (job.result.columns || []).map((column) => column.name);
    const types = new Map((job.result.columns || []).map((column) => [column.name, column.type]));
    for (const record of records) {
      for (const key of Object.keys(record)) if (!types.has(key) && !names.includes(key)) names.push(key);
    }
    note.textContent =
      records.length === 0
        ? "The result has no records."
        : more
          ? `The first ${count(records.length)} records of ${count(job.result.rows)}.`
          : `All ${plural(records.length, "record")}.`;
    if (records.length === 0) return;
    const table = h(
      "table",
      { class: "preview-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col", class: "num record-number", text: "#" }),
          names.map((name) =>
            h(
              "th",
              { scope: "col", class: NUMERIC.has(types.get(name)) ? "num" : null },
              h("span", { class: "column-name", text: name }),
              types.has(name) ? h("span", { class: "column-type", text: types.get(name) }) : null,
            ),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        records.map((record, index) =>
          h(
            "tr",
            {},
            h("th", { scope: "row", class: "num record-number", text: count(index + 1) }),
            names.map((name) => valueCell(record[name], types.get(name))),
          ),
        ),
      ),
    );
    this.preview.append(h("div", { class: "table-wrap preview-wrap" }, table));
  }

  async #errors(job, url, offset, signal, { focus = false } = {}) {
    const heading = h("h3", { id: "errors-title", tabindex: "-1", text: "Row errors" });
    let page;
    try {
      page = await jobs.errors(url);
    } catch (error) {
      if (signal.aborted) return;
      fill(this.errors, heading, h("p", { class: "problem", text: `Could not read the row errors: ${error.message}` }));
      this.errors.hidden = false;
      return;
    }
    if (signal.aborted) return;
    const first = `/jobs/${encodeURIComponent(job.id)}/errors?limit=${ERRORS_PER_PAGE}`;
    const summary =
      page.total === 0
        ? "No row errors."
        : `${plural(page.total, "row error")}` +
          (page.stored < page.total ? `, the first ${count(page.stored)} kept` : "") +
          (page.items.length
            ? `; showing ${count(offset + 1)}–${count(offset + page.items.length)}.`
            : ".");
    const parts = [heading, h("p", { class: "hint", role: "status", text: summary })];
    if (page.items.length) {
      parts.push(
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "errors-table" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", { scope: "col", class: "num", text: "Line" }),
                h("th", { scope: "col", text: "Type" }),
                h("th", { scope: "col", text: "Message" }),
                h("th", { scope: "col", text: "Raw text" }),
              ),
            ),
            h(
              "tbody",
              {},
              page.items.map((item) =>
                h(
                  "tr",
                  {},
                  h("td", { class: "num", text: count(item.line) }),
                  h("td", {}, h("span", { class: "error-type", text: item.type })),
                  h("td", { text: item.message }),
                  h("td", { class: "raw" }, h("code", { text: item.raw })),
                ),
              ),
            ),
          ),
        ),
      );
    }
    if (offset > 0 || page.next) {
      parts.push(
        h(
          "nav",
          { class: "pager", "aria-label": "Pages of row errors" },
          h("button", {
            type: "button",
            text: "First errors",
            disabled: offset === 0,
            onclick: () => this.#errors(job, first, 0, signal, { focus: true }),
          }),
          h("button", {
            type: "button",
            text: "Next errors",
            disabled: !page.next,
            onclick: () =>
              this.#errors(job, page.next, offset + page.items.length, signal, { focus: true }),
          }),
        ),
      );
    }
    fill(this.errors, parts);
    this.errors.hidden = false;
    if (focus) heading.focus();
  }

  async #cancel() {
    try {
      if (await cancelJob(this.job)) this.hooks.onChanged();
    } catch (error) {
      say(this.actionError, `Could not cancel: ${error.message}`);
    }
  }

  async #delete() {
    const id = this.job.id;
    try {
      if (!(await deleteJob(this.job))) return;
      this.hooks.onDeleted(id);
    } catch (error) {
      say(this.actionError, `Could not delete: ${error.message}`);
    }
  }
}

/** The uploaded file's name without its folders, `.gz` and extension, as the service names
 * downloads (`orders.csv` → `orders`). */
function uploadStem(fileName) {
  let name = fileName.split(/[\\/]/).pop();
  if (name.toLowerCase().endsWith(".gz")) name = name.slice(0, -3);
  const dot = name.lastIndexOf(".");
  return (dot > 0 ? name.slice(0, dot) : name).trim();
}
