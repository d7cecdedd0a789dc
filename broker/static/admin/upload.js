// The upload panel: files chosen or dropped join a list (checked against /config, previewed),
// then go to the bucket a few at a time through one pipeline (`uploadItem`).

import { checkFile, isAuthError, sendFile } from "./api.js";
import { $, show } from "./dom.js";
import { report, toast } from "./feedback.js";
import { formatBytes, plural, typeLabel } from "./format.js";
import { kindOptions, visibilityHint } from "./image-view.js";
import { releaseItem, renderQueueItem, setItemProgress, setItemStatus } from "./queue-item.js";
import { session } from "./session.js";

const UPLOAD_CONCURRENCY = 3;

let queue = []; // the items listed, in order
let queueSeq = 0;
let uploading = false;
let onUploaded = () => {};
let visibilityChosen = false; // once the user picks one, a change of kind no longer resets it

/** Wire the panel's controls; `uploaded()` runs after a batch stored at least one image. */
export function initUpload({ uploaded }) {
  onUploaded = uploaded;
  $("pick-files").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = ""; // choosing the same file again fires change again
  });
  $("start-upload").addEventListener("click", startUploads);
  $("upload-kind").addEventListener("change", () => {
    if (!visibilityChosen) $("upload-visibility").value = defaultVisibility($("upload-kind").value);
    describeVisibility();
  });
  $("upload-visibility").addEventListener("change", () => {
    visibilityChosen = true;
    describeVisibility();
  });
  $("clear-queue").addEventListener("click", clearQueue);
  initDropzone($("dropzone"));
}

/** Show the broker's limits and kinds (from GET /config). */
export function configureUpload(config) {
  const types = config.allowed_types.map(typeLabel).join(", ");
  $("upload-limits").textContent = `${types} · up to ${formatBytes(config.max_upload_bytes)} each`;
  $("file-input").setAttribute("accept", config.allowed_types.join(","));
  $("upload-kind").replaceChildren(...kindOptions(config.kinds || [], config.default_kind));
  visibilityChosen = false;
  $("upload-visibility").value = defaultVisibility(config.default_kind);
  describeVisibility();
}

/** The broker's default for new images of `kind`: public for its public kinds (GET /config). */
function defaultVisibility(kind) {
  return (session.config?.public_kinds || []).includes(kind) ? "public" : "private";
}

function describeVisibility() {
  $("upload-visibility-hint").textContent = visibilityHint($("upload-visibility").value);
}

/** Empty the list (signing out). */
export function resetUpload() {
  for (const item of queue) if (item.previewUrl) URL.revokeObjectURL(item.previewUrl);
  queue = [];
  $("queue").replaceChildren();
  updateQueueControls();
}

function addFiles(files) {
  for (const file of files) {
    const item = { key: ++queueSeq, file, status: "ready", message: "Ready to upload", previewUrl: null };
    try {
      checkFile(file, session.config);
    } catch (error) {
      item.status = "invalid";
      item.message = error.message;
    }
    if (item.status === "ready") item.previewUrl = URL.createObjectURL(file);
    renderQueueItem(item, { onRemove: removeQueueItem, onRetry: retryItem, onPause: togglePause });
    queue.push(item);
    $("queue").append(item.node);
  }
  updateQueueControls();
}

/** Whether the item's upload is under way (running or paused). */
const inProgress = (item) => item.status === "uploading" || item.status === "paused";

function removeQueueItem(item) {
  if (inProgress(item)) return;
  const index = queue.indexOf(item);
  const next = queue[index + 1] || queue[index - 1];
  queue.splice(index, 1);
  releaseItem(item);
  updateQueueControls();
  (next ? next.remove : $("pick-files")).focus();
}

function togglePause(item) {
  if (!item.task) return;
  if (item.status === "paused") {
    item.task.resume();
    setItemStatus(item, "uploading", "Resuming…");
  } else if (item.status === "uploading") {
    item.task.pause();
  }
  item.pause.focus();
}

function retryItem(item) {
  setItemProgress(item, 0);
  setItemStatus(item, "ready", "Ready to upload");
  updateQueueControls();
  $("start-upload").focus();
}

function clearQueue() {
  for (const item of [...queue]) {
    if (inProgress(item)) continue;
    releaseItem(item);
    queue.splice(queue.indexOf(item), 1);
  }
  updateQueueControls();
  $("pick-files").focus();
}

function updateQueueControls() {
  const ready = queue.filter((item) => item.status === "ready").length;
  const start = $("start-upload");
  start.disabled = ready === 0 || uploading;
  start.textContent = uploading ? "Uploading…" : ready ? `Upload ${plural(ready, "file")}` : "Upload";
  show($("clear-queue"), queue.some((item) => !inProgress(item)));
  show($("queue-empty"), queue.length === 0);
}

/** What every file of this batch is uploaded with (the panel's choices). */
function batchOptions() {
  return { kind: $("upload-kind").value, visibility: $("upload-visibility").value };
}

/** What the item's status line says while it uploads. */
function progressNote({ phase, percent, parts }, task) {
  if (phase === "paused") return `Paused at ${percent}% · Resume goes on from there`;
  if (phase === "confirming") return "Verifying…";
  if (!parts) return `Uploading… ${percent}%`;
  const resumed = task.resumedParts ? ` · resumed, ${task.resumedParts} already stored` : "";
  return `Uploading… ${percent}% (part ${Math.min(parts.done + 1, parts.total)} of ${parts.total})${resumed}`;
}

/** Upload one item; true when stored, false when it failed (shown on the item). */
async function uploadItem(item, options) {
  setItemStatus(item, "uploading", "Checking…");
  setItemProgress(item, 0);
  try {
    const caption = item.caption.value.trim();
    item.task = sendFile(item.file, {
      ...options,
      caption: caption || undefined,
      config: session.config,
      onProgress: (progress) => {
        if (progress.phase === "hashing") return;
        if (progress.phase === "paused") setItemStatus(item, "paused", progressNote(progress, item.task));
        else if (item.status === "paused") setItemStatus(item, "uploading", progressNote(progress, item.task));
        setItemProgress(item, progress.phase === "confirming" ? 100 : progress.percent, progressNote(progress, item.task));
      },
    });
    setItemStatus(item, "uploading", item.task.multipart ? "Preparing the parts…" : "Checking…");
    item.image = await item.task.promise;
    setItemProgress(item, 100);
    setItemStatus(item, "done", "Uploaded");
    return true;
  } catch (error) {
    if (isAuthError(error)) throw error; // the whole batch stops: the page signs out
    setItemStatus(item, "error", error.message || "The upload failed.");
    return false;
  } finally {
    item.task = null;
  }
}

async function startUploads() {
  const items = queue.filter((item) => item.status === "ready");
  if (!items.length || uploading) return;
  const options = batchOptions();
  uploading = true;
  updateQueueControls();
  let done = 0;
  let failed = 0;
  const pending = [...items];
  const worker = async () => {
    while (pending.length) {
      const item = pending.shift();
      if (await uploadItem(item, options)) done += 1;
      else failed += 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(UPLOAD_CONCURRENCY, items.length) }, worker));
  } catch (error) {
    uploading = false;
    report(error);
    return;
  }
  uploading = false;
  updateQueueControls();
  if (done) {
    toast(failed ? `Uploaded ${plural(done, "image")}; ${failed} failed.` : `Uploaded ${plural(done, "image")}.`);
    await onUploaded();
  } else if (failed) {
    toast(`${plural(failed, "upload")} failed.`);
  }
}

function initDropzone(dropzone) {
  let dragDepth = 0;
  dropzone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    dragDepth += 1;
    dropzone.classList.add("is-dragging");
  });
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  dropzone.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dropzone.classList.remove("is-dragging");
  });
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    dropzone.classList.remove("is-dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
  });
  dropzone.addEventListener("click", (event) => {
    if (event.target === dropzone || event.target.closest(".dropzone-title, .dropzone-icon")) $("file-input").click();
  });
  // A file dropped next to the zone must not make the browser navigate away to it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (!dropzone.contains(event.target)) event.preventDefault();
    });
  }
}
