// One file in the upload list: its preview, name, size and type, caption field, progress bar,
// status line and buttons. The list and the uploads themselves are upload.js's.

import { ICONS, h, icon } from "./dom.js";
import { formatBytes, typeLabel } from "./format.js";

/** Build the item's nodes (on `item`: node, caption, progress, …) from its file and status. */
export function renderQueueItem(item, { onRemove, onRetry, onPause }) {
  const { file } = item;
  const name = file.name || "image";
  const thumb = item.previewUrl
    ? h("img", { src: item.previewUrl, alt: `Preview of ${name}` })
    : icon(ICONS.image, "queue-placeholder");
  item.bar = h("div", { class: "progress-bar" });
  item.progress = h(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-label": `Upload progress of ${name}`,
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": "0",
    },
    item.bar,
  );
  const captionId = `caption-${item.key}`;
  item.caption = h("input", {
    id: captionId,
    class: "queue-caption",
    type: "text",
    maxlength: "2000",
    placeholder: "Caption (optional)",
    autocomplete: "off",
  });
  item.statusNode = h("p", { class: "queue-status" });
  item.remove = h("button", {
    type: "button",
    class: "icon-btn",
    "aria-label": `Remove ${name} from the list`,
    onclick: () => onRemove(item),
  });
  item.remove.append(icon(ICONS.close));
  item.retry = h("button", { type: "button", class: "btn btn-ghost btn-xs", text: "Retry", hidden: true, onclick: () => onRetry(item) });
  // Large files go in parts: their upload can be paused and resumed.
  item.pause = h("button", { type: "button", class: "btn btn-ghost btn-xs", text: "Pause", hidden: true, onclick: () => onPause(item) });
  const valid = item.status !== "invalid";
  item.node = h(
    "li",
    { class: "queue-item" },
    h("div", { class: "queue-thumb" }, thumb),
    h(
      "div",
      { class: "queue-main" },
      h(
        "div",
        { class: "queue-line" },
        h("span", { class: "queue-name", text: name, title: name }),
        h("span", { class: "queue-meta", text: `${formatBytes(file.size)} · ${typeLabel(file.type)}` }),
      ),
      valid ? h("label", { class: "visually-hidden", for: captionId, text: `Caption for ${name}` }) : null,
      valid ? item.caption : null,
      valid ? item.progress : null,
      h("div", { class: "queue-foot" }, item.statusNode, item.pause, item.retry),
    ),
    item.remove,
  );
  setItemStatus(item, item.status, item.message);
}

/** Set the item's status ("ready", "invalid", "uploading", "paused", "done", "error") and its
 * message. */
export function setItemStatus(item, status, message) {
  item.status = status;
  item.message = message;
  item.node.dataset.state = status;
  item.statusNode.textContent = message;
  item.statusNode.setAttribute("role", status === "error" || status === "invalid" ? "alert" : "status");
  const busy = status === "uploading" || status === "paused";
  item.remove.disabled = busy;
  item.caption.disabled = busy || status === "done";
  item.retry.hidden = status !== "error";
  item.pause.hidden = !(busy && item.task?.multipart);
  item.pause.textContent = status === "paused" ? "Resume" : "Pause";
  item.pause.setAttribute("aria-label", `${status === "paused" ? "Resume" : "Pause"} the upload of ${item.file.name || "image"}`);
}

/** Move the item's progress bar to `percent`; `note` replaces the status line's text. */
export function setItemProgress(item, percent, note) {
  const value = Math.max(0, Math.min(100, Math.round(percent)));
  item.progress.setAttribute("aria-valuenow", String(value));
  item.bar.style.width = `${value}%`; // CSSOM, not a style attribute: allowed by the CSP
  if (note !== undefined) item.statusNode.textContent = note;
}

/** Drop the item from the page and free its preview. */
export function releaseItem(item) {
  if (item.previewUrl) URL.revokeObjectURL(item.previewUrl);
  item.node.remove();
}
