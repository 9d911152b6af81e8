// The jobs table: newest first, refreshed every few seconds, filtered by status, paged
// through the API's cursor, with cancel and delete.

import { cancelJob, deleteJob } from "./actions.js";
import { jobs } from "./api.js";
import { badge, fill, h, say } from "./dom.js";
import { bytes, count, percent, when } from "./format.js";

const REFRESH_MS = 2000;
const HIDDEN_REFRESH_MS = 10000;

function progressShare(job) {
  if (job.status === "succeeded") return 100;
  return Math.min(job.progress?.percent || 0, 100);
}

function rowsOf(job) {
  return job.result ? job.result.rows : (job.progress?.rows_done ?? 0);
}

class JobRow {
  constructor(job, table) {
    this.job = job;
    this.link = h("a", { href: `#/jobs/${job.id}`, class: "file-link" });
    this.status = h("td", { class: "status" });
    this.bar = h("progress", { max: 100 });
    this.share = h("span", { class: "share" });
    this.rows = h("td", { class: "num" });
    this.size = h("td", { class: "num col-size" });
    this.created = h("time");
    this.cancel = h("button", {
      type: "button",
      class: "small",
      text: "Cancel",
      onclick: () => table.cancel(this.job),
    });
    this.remove = h("button", {
      type: "button",
      class: "small danger-quiet",
      text: "Delete",
      onclick: () => table.delete(this.job),
    });
    this.element = h(
      "tr",
      { dataset: { jobId: job.id } },
      h("th", { scope: "row", class: "file" }, this.link),
      this.status,
      h("td", { class: "col-progress" }, this.bar, this.share),
      this.rows,
      this.size,
      h("td", { class: "col-created" }, this.created),
      h("td", { class: "actions" }, this.cancel, this.remove),
    );
    this.shownStatus = null;
    this.update(job);
  }

  update(job) {
    this.job = job;
    const name = job.file.name;
    this.link.textContent = name;
    this.link.title = name;
    if (this.shownStatus !== job.status) {
      fill(this.status, badge(job.status));
      this.shownStatus = job.status;
    }
    this.element.dataset.status = job.status;
    const share = progressShare(job);
    if (job.status === "queued") this.bar.removeAttribute("value");
    else this.bar.value = share;
    this.bar.setAttribute("aria-label", `Progress of ${name}`);
    this.bar.setAttribute("aria-valuetext", percent(share));
    this.share.textContent = job.status === "queued" ? "" : percent(share);
    const failed = job.progress?.rows_failed || 0;
    fill(
      this.rows,
      count(rowsOf(job)),
      failed ? h("span", { class: "failed-rows", text: ` +${count(failed)} failed` }) : null,
    );
    this.size.textContent = bytes(job.file.size);
    this.created.dateTime = job.created_at;
    this.created.textContent = when(job.created_at, { short: true });
    this.created.title = when(job.created_at);
    this.cancel.hidden = job.done;
    this.cancel.setAttribute("aria-label", `Cancel the job for ${name}`);
    this.remove.setAttribute("aria-label", `Delete the job for ${name}`);
  }
}

export class JobsTable {
  #rows = new Map();
  #pages = [];
  #timer = null;
  #loading = false;
  #again = false;
  #paused = false;
  #selected = null;
  // Bumped by every change the person makes: an answer to a request sent before it is stale.
  #generation = 0;

  /** `hooks.onDeleted(id)` is told about deletions made from the table. */
  constructor(hooks) {
    this.hooks = hooks;
    this.body = document.querySelector("#jobs-table tbody");
    this.heading = document.getElementById("jobs-title");
    this.empty = document.getElementById("jobs-empty");
    this.error = document.getElementById("jobs-error");
    this.filter = document.getElementById("status-filter");
    this.pageSize = document.getElementById("page-size");
    this.newer = document.getElementById("jobs-newer");
    this.older = document.getElementById("jobs-older");
    this.pageLabel = document.getElementById("jobs-page");
    this.next = null;

    this.filter.addEventListener("change", () => this.firstPage());
    this.pageSize.addEventListener("change", () => this.firstPage());
    this.older.addEventListener("click", () => {
      if (!this.next) return;
      this.#pages.push(this.next);
      this.#generation += 1;
      this.refresh();
    });
    this.newer.addEventListener("click", () => {
      if (this.#pages.length > 1) this.#pages.pop();
      this.#generation += 1;
      this.refresh();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.refresh();
    });
    this.#pages = [this.#firstUrl()];
  }

  #firstUrl() {
    const query = new URLSearchParams({ limit: this.pageSize.value });
    if (this.filter.value) query.set("status", this.filter.value);
    return `/jobs?${query}`;
  }

  firstPage() {
    this.#generation += 1;
    this.#pages = [this.#firstUrl()];
    this.refresh();
  }

  /** Mark the row of the job shown in the job view. */
  select(id) {
    this.#selected = id;
    for (const [rowId, row] of this.#rows) {
      if (rowId === id) row.element.setAttribute("aria-current", "true");
      else row.element.removeAttribute("aria-current");
    }
  }

  /** Load the current page now (and keep refreshing it). */
  async refresh() {
    if (this.#loading) {
      this.#again = true;
      return;
    }
    this.#loading = true;
    this.#paused = false;
    clearTimeout(this.#timer);
    let delay = document.hidden ? HIDDEN_REFRESH_MS : REFRESH_MS;
    const generation = this.#generation;
    try {
      const url = this.#pages.at(-1);
      const page = await jobs.list(url);
      if (generation !== this.#generation) {
        this.#again = true;
      } else if (page.items.length === 0 && this.#pages.length > 1) {
        // Everything on this page went away: show the one before it.
        this.#pages.pop();
        this.#again = true;
      } else {
        this.#render(page);
      }
      say(this.error, "");
    } catch (error) {
      say(this.error, `Could not load the jobs: ${error.message}`);
      if (error.status === 401) this.#paused = true; // until a key is given
      delay = Math.max(delay, 5000);
    } finally {
      this.#loading = false;
      if (this.#again) {
        this.#again = false;
        this.refresh();
      } else if (!this.#paused) {
        this.#timer = setTimeout(() => this.refresh(), delay);
      }
    }
  }

  #render(page) {
    const ids = new Set(page.items.map((job) => job.id));
    for (const [id, row] of this.#rows) {
      if (!ids.has(id)) {
        row.element.remove();
        this.#rows.delete(id);
      }
    }
    page.items.forEach((job, index) => {
      let row = this.#rows.get(job.id);
      if (row) row.update(job);
      else {
        row = new JobRow(job, this);
        this.#rows.set(job.id, row);
      }
      // Rows already in place are not moved, so a focused button keeps its focus.
      const here = this.body.children[index];
      if (here !== row.element) this.body.insertBefore(row.element, here || null);
    });
    this.select(this.#selected);
    this.next = page.next;
    this.empty.hidden = page.items.length > 0;
    this.empty.textContent = this.filter.value ? `No ${this.filter.value} jobs.` : "No jobs yet.";
    this.older.disabled = !page.next;
    this.newer.disabled = this.#pages.length <= 1;
    this.pageLabel.textContent = `Page ${this.#pages.length}`;
  }

  /** Take a deleted job out of the table now, not at the next refresh. */
  forget(id) {
    this.#generation += 1;
    this.#rows.get(id)?.element.remove();
    this.#rows.delete(id);
    this.refresh();
  }

  async cancel(job) {
    try {
      if (await cancelJob(job)) {
        this.#generation += 1;
        this.refresh();
      }
    } catch (error) {
      say(this.error, `Could not cancel the job for ${job.file.name}: ${error.message}`);
      this.refresh();
    }
  }

  async delete(job) {
    try {
      if (!(await deleteJob(job))) return;
      this.heading.focus();
      this.hooks.onDeleted(job.id);
    } catch (error) {
      say(this.error, `Could not delete the job for ${job.file.name}: ${error.message}`);
      this.refresh();
    }
  }
}
