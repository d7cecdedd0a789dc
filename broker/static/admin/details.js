// The details dialog of one image: its picture (the `medium` variant, the original until it is
// made) and facts, caption, kind, primary and visibility edits, its public link, the original's
// signed URL (with its expiry, kept fresh; copied and opened in full size) and deletion. Whoever
// opens it is told what changed. Someone who may see but not change the image (a reader, or
// anyone looking at another user's public image) gets the same dialog with the edits disabled.

import { deleteImage, detailsUrl, originalUrl, patchImage } from "./api.js";
import { $, copyFrom, h, setAlert, show } from "./dom.js";
import { report, toast } from "./feedback.js";
import { formatBytes, formatDate, formatTime, fromNow, kindLabel, plural, typeLabel } from "./format.js";
import { altText, badges, isPublic, kindOptions, visibilityHint } from "./image-view.js";
import { mayChange } from "./session.js";

const EXPIRY_TICK_MS = 10_000;
const REFRESH_BEFORE_MS = 30_000; // ask for a new URL this long before the shown one expires

const dialog = $("details");

let current = null; // the image shown
let opener = null; // what gets focus back when the dialog closes
let handlers = { onChanged: () => {}, onDeleted: () => null }; // the opener's, as it opened the dialog
let expiresAt = 0;
let expiryTimer = 0;

/**
 * Show `image` in the dialog. `onChanged(image)` hears of each saved edit, `onDeleted(image)` of
 * the deletion and answers what should get focus instead of `opener`.
 */
export function openDetails(image, { opener: from = null, onChanged = () => {}, onDeleted = () => null } = {}) {
  current = image;
  opener = from;
  handlers = { onChanged, onDeleted };
  setAlert($("details-error"), "");
  show($("delete-confirm"), false);
  $("delete-btn").disabled = false;
  const img = $("details-img");
  img.removeAttribute("src");
  img.removeAttribute("width");
  img.removeAttribute("height");
  $("url-output").value = "";
  $("open-full").removeAttribute("href");
  $("url-expiry").textContent = "";
  renderDetails(image);
  dialog.showModal();
  $("details-close").focus();
  showSignedUrl(image);
  clearInterval(expiryTimer);
  expiryTimer = setInterval(() => expiresAt && renderExpiry(), EXPIRY_TICK_MS);
}

/** Close the dialog if it is open (signing out). */
export function closeDetails() {
  if (dialog.open) dialog.close();
}

/** Offer the broker's kinds (from GET /config). */
export function configureDetails(config) {
  $("kind-input").replaceChildren(...kindOptions(config.kinds || []));
}

/** Wire the dialog's controls. */
export function initDetails() {
  dialog.addEventListener("close", () => {
    clearInterval(expiryTimer);
    current = null;
    expiresAt = 0;
    const focus = opener;
    opener = null;
    if (focus && focus.isConnected) focus.focus();
    else $("library-title").focus();
  });
  // A click on the backdrop (outside the panel) closes it, as Escape does.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  $("details-close").addEventListener("click", () => dialog.close());
  $("caption-form").addEventListener("submit", saveCaption);
  $("kind-input").addEventListener("change", async (event) => {
    const updated = await applyChanges({ kind: event.target.value });
    if (updated) toast(`Kind set to ${kindLabel(updated.kind)}.`);
  });
  $("primary-btn").addEventListener("click", async () => {
    const updated = await applyChanges({ is_primary: true });
    if (updated) {
      toast(`Set as the primary ${updated.kind} image.`);
      $("caption-input").focus();
    }
  });
  $("visibility-input").addEventListener("change", async (event) => {
    const updated = await applyChanges({ visibility: event.target.value });
    if (!updated) {
      if (current) renderSharing(current); // refused: show what the image still is
      return;
    }
    toast(
      isPublic(updated)
        ? "The image is public: copy its link to show it anywhere."
        : "The image is private: its public link no longer works.",
    );
  });
  $("copy-public-url").addEventListener("click", async () => {
    const input = $("public-url-output");
    if (!input.value) return;
    toast((await copyFrom(input)) ? "Public link copied." : "Select the link and copy it.");
  });
  $("copy-url").addEventListener("click", async () => {
    const input = $("url-output");
    if (!input.value) return;
    toast((await copyFrom(input)) ? "Signed URL copied." : "Select the URL and copy it.");
  });
  $("delete-btn").addEventListener("click", askToDelete);
  $("delete-cancel").addEventListener("click", () => {
    show($("delete-confirm"), false);
    $("delete-btn").disabled = false;
    $("delete-btn").focus();
  });
  $("delete-yes").addEventListener("click", deleteCurrent);
}

function metaRow(term, value, wide = false) {
  return h("div", { class: wide ? "meta-item meta-wide" : "meta-item" }, h("dt", { text: term }), h("dd", { text: value }));
}

/** Fill the dialog's fields from `image` (everything but the signed URL). */
function renderDetails(image) {
  $("details-title").textContent = image.filename;
  const img = $("details-img");
  img.alt = altText(image);
  if (image.width && image.height) {
    img.width = image.width;
    img.height = image.height;
  }
  $("details-badges").replaceChildren(...badges(image, { withKind: true }));
  const usage = image.usage_count
    ? `${plural(image.usage_count, "time")}${image.last_used_at ? `, last ${formatDate(image.last_used_at)}` : ""}`
    : "Not used yet";
  $("details-meta").replaceChildren(
    metaRow("Type", `${typeLabel(image.content_type)} · ${formatBytes(image.size)}`),
    metaRow("Dimensions", image.width && image.height ? `${image.width} × ${image.height} px` : "—"),
    metaRow("Owner", image.owner),
    metaRow("Usage", usage),
    metaRow("Created", formatDate(image.created_at)),
    metaRow("Updated", formatDate(image.updated_at)),
    metaRow("Key", image.key, true),
  );
  $("caption-input").value = image.caption || "";
  $("caption-status").textContent = "";
  $("kind-input").value = image.kind;
  const primary = $("primary-btn");
  primary.textContent = image.is_primary ? "Primary" : "Set as primary";
  renderSharing(image);
  // Edits only for who may make them: the broker would refuse them (403) anyway.
  const editable = mayChange(image);
  for (const id of ["caption-input", "caption-save", "kind-input", "visibility-input", "delete-btn"]) {
    $(id).disabled = !editable;
  }
  primary.disabled = !editable || image.is_primary;
  $("details-readonly").textContent = editable
    ? ""
    : `View only: this image is ${image.owner}’s, and you may not change it.`;
  show($("details-readonly"), !editable);
}

/** The visibility, what it means, and the public link when there is one. */
function renderSharing(image) {
  const visibility = isPublic(image) ? "public" : "private";
  $("visibility-input").value = visibility;
  $("visibility-hint").textContent = visibilityHint(visibility);
  $("public-url-output").value = isPublic(image) ? image.public_url : "";
  show($("public-link-field"), isPublic(image));
}

async function showSignedUrl(image) {
  try {
    const [shown, original] = await Promise.all([detailsUrl(image.id), originalUrl(image.id)]);
    if (current?.id !== image.id) return;
    const img = $("details-img");
    if (img.getAttribute("src") !== shown.url) img.src = shown.url;
    $("url-output").value = original.url;
    $("open-full").href = original.url;
    expiresAt = Math.min(Date.parse(shown.expires_at), Date.parse(original.expires_at));
    renderExpiry();
  } catch (error) {
    if (current?.id === image.id) report(error, $("details-error"));
  }
}

function renderExpiry() {
  const left = expiresAt - Date.now();
  const at = formatTime(expiresAt);
  $("url-expiry").textContent = left > 0 ? `Expires at ${at} (${fromNow(left)})` : `Expired at ${at}`;
  // The module's cache hands out a fresh URL shortly before this one expires.
  if (left < REFRESH_BEFORE_MS && current) showSignedUrl(current);
}

/** PATCH the image shown; on success show the result here and tell the opener. */
async function applyChanges(changes, { status } = {}) {
  const image = current;
  if (!image) return null;
  const { onChanged } = handlers;
  setAlert($("details-error"), "");
  try {
    const updated = await patchImage(image.id, changes);
    onChanged(updated);
    if (current?.id === updated.id) {
      current = updated;
      renderDetails(updated);
      if (status) $("caption-status").textContent = status;
    }
    return updated;
  } catch (error) {
    report(error, $("details-error"));
    return null;
  }
}

async function saveCaption(event) {
  event.preventDefault();
  const button = $("caption-save");
  button.disabled = true;
  try {
    const caption = $("caption-input").value.trim();
    await applyChanges({ caption: caption || null }, { status: "Saved" });
  } finally {
    button.disabled = false;
  }
}

function askToDelete() {
  if (!current) return;
  $("delete-question").textContent = `Delete “${current.filename}”? It leaves the bucket and the library; this cannot be undone.`;
  show($("delete-confirm"));
  $("delete-btn").disabled = true;
  $("delete-cancel").focus();
}

async function deleteCurrent() {
  const image = current;
  if (!image) return;
  const { onDeleted } = handlers;
  const button = $("delete-yes");
  button.disabled = true;
  try {
    await deleteImage(image.id);
    opener = onDeleted(image);
    dialog.close();
    toast(`Deleted “${image.filename}”.`);
  } catch (error) {
    report(error, $("details-error"));
  } finally {
    button.disabled = false;
  }
}
