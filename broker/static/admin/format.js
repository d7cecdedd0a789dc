// Text for people: dates, times, counts, types and labels, in the browser's locale. No DOM here.

export { formatBytes } from "../broker.js";

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** An ISO timestamp as a date and time ("—" when there is none). */
export function formatDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

/** A moment (epoch milliseconds) as a time of day. */
export function formatTime(ms) {
  return timeOnly.format(new Date(ms));
}

/** A duration from now ("in 4 minutes", "12 seconds ago"). */
export function fromNow(ms) {
  const seconds = Math.round(ms / 1000);
  if (Math.abs(seconds) < 60) return relative.format(seconds, "second");
  return relative.format(Math.round(seconds / 60), "minute");
}

/** "1 image", "3 images". */
export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** A MIME type as people name it ("image/jpeg" → "JPEG"). */
export function typeLabel(type) {
  return String(type || "").replace(/^image\//, "").toUpperCase() || "unknown type";
}

/** A kind as a label ("gallery" → "Gallery"). */
export function kindLabel(kind) {
  return String(kind || "").charAt(0).toUpperCase() + String(kind || "").slice(1);
}
