// How numbers, sizes, rates and times are shown. MB means 10^6 bytes, as in the README.

const numbers = new Intl.NumberFormat();
const UNITS = ["B", "kB", "MB", "GB", "TB"];

export function count(value) {
  return value === null || value === undefined ? "–" : numbers.format(value);
}

export function plural(value, one, many = `${one}s`) {
  return `${count(value)} ${value === 1 ? one : many}`;
}

export function bytes(value) {
  if (value === null || value === undefined) return "–";
  let size = value;
  let unit = 0;
  while (size >= 1000 && unit < UNITS.length - 1) {
    size /= 1000;
    unit += 1;
  }
  if (unit === 0) return `${size} B`;
  return `${size.toFixed(size < 10 ? 2 : size < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

export function rate(bytesPerSecond) {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "– MB/s";
  const mb = bytesPerSecond / 1e6;
  return `${mb.toFixed(mb < 10 ? 2 : 1)} MB/s`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  if (seconds < 1) return "< 1 s";
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function percent(value) {
  const number = Number(value) || 0;
  return `${number >= 100 ? 100 : number.toFixed(1)}%`;
}

/** A running job's progress in one line: phase, percent, rows, rate, time left. */
export function runningLine(progress, share) {
  return [
    progress.phase || "starting",
    percent(share),
    plural(progress.rows_done || 0, "row"),
    rate(progress.rate_bytes_per_s),
    `${duration(progress.eta_seconds)} left`,
  ].join(" · ");
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

/** A UTC timestamp in the reader's time zone; today's as a time only. */
export function when(iso, { short = false } = {}) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const today = new Date().toDateString() === date.toDateString();
  return short && today ? timeOnly.format(date) : dateTime.format(date);
}

const DELIMITER_NAMES = { ",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space" };

/** A delimiter a person can read: tab and space have no visible glyph. */
export function delimiter(value) {
  if (value === null || value === undefined) return "–";
  const name = DELIMITER_NAMES[value];
  return name ? (value.trim() ? `${value} (${name})` : name) : value;
}
