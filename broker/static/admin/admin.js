// The admin UI: sign in with a JWT, upload, browse, edit and delete images.
//
// Everything goes through the browser module (../broker.js). Data is rendered with DOM APIs and
// textContent only, never as HTML. The token lives in sessionStorage (this tab only) and is sent
// only in Authorization headers; a token passed in the URL fragment (#token=…) is moved to
// sessionStorage and removed from the address bar before anything else happens.

import {
  BrokerError,
  checkFile,
  configure,
  decodeTokenClaims,
  defaultClient,
  deleteImage,
  formatBytes,
  getConfig,
  invalidate,
  listImages,
  patchImage,
  signedUrl,
  signedUrls,
  upload,
} from "../broker.js";

const TOKEN_KEY = "broker.admin.token";
const PAGE_SIZE = 24;
const UPLOAD_CONCURRENCY = 3;
const SEARCH_DEBOUNCE_MS = 250;

// ---- token: fragment → sessionStorage, before anything else -------------------------------------

/** Move a `#token=…` from the address bar to sessionStorage; true when there was one. */
function takeTokenFromFragment() {
  if (!location.hash || location.hash.length < 2) return false;
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("token")) return false;
  const token = (params.get("token") || "").trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  params.delete("token");
  const rest = params.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return Boolean(token);
}
takeTokenFromFragment();

const storedToken = () => sessionStorage.getItem(TOKEN_KEY);
configure({ getToken: storedToken });

// ---- DOM helpers ------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** Build an element. Props: class, text (textContent), dataset, on<event>, else attributes. */
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function icon(paths, className = "icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", className);
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}
const ICON_CLOSE = ["M6 6l12 12M18 6L6 18"];
const ICON_IMAGE = ["M4 5h16v14H4z", "M4 16l5-5 4 4 3-3 4 4"];
const ICON_STAR = ["M12 3.5l2.6 5.3 5.9.9-4.3 4.1 1 5.8-5.2-2.7-5.2 2.7 1-5.8-4.3-4.1 5.9-.9z"];

function show(node, visible = true) {
  node.hidden = !visible;
}

function setAlert(node, message) {
  node.textContent = message || "";
  show(node, Boolean(message));
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function formatDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

function fromNow(ms) {
  const seconds = Math.round(ms / 1000);
  if (Math.abs(seconds) < 60) return relative.format(seconds, "second");
  return relative.format(Math.round(seconds / 60), "minute");
}

function typeLabel(type) {
  return String(type || "").replace(/^image\//, "").toUpperCase() || "unknown type";
}

const altText = (image) => image.caption || image.filename;
const kindLabel = (kind) => String(kind || "").charAt(0).toUpperCase() + String(kind || "").slice(1);

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

let toastTimer = 0;
function toast(message) {
  const node = $("toast");
  node.textContent = message;
  show(node);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(node, false), 4000);
}

function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ---- state ----------------------------------------------------------------------------------------

const state = {
  claims: null,
  isAdmin: false,
  config: null,
  images: [], // the images shown, in order
  tiles: new Map(), // id → {item, img}
  nextCursor: null,
  loadSeq: 0,
  queue: [],
  queueSeq: 0,
  uploading: false,
  current: null, // the image in the details dialog
  opener: null,
  expiryTimer: 0,
};

const isAuthError = (error) => error instanceof BrokerError && error.status === 401;

/** Show an API error where it belongs; a refused token signs out. */
function report(error, node) {
  if (isAuthError(error)) {
    signOut(`Signed out: ${error.message}. Sign in again.`);
    return;
  }
  if (node) setAlert(node, error.message || String(error));
  else toast(error.message || String(error));
}

// ---- sign in / out ---------------------------------------------------------------------------------

function showSignIn(message) {
  show($("boot"), false);
  show($("app-view"), false);
  show($("session"), false);
  show($("signin-view"));
  setAlert($("signin-error"), message);
  $("token-input").value = "";
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  defaultClient.clearCache();
  if ($("details").open) $("details").close();
  for (const item of state.queue) if (item.previewUrl) URL.revokeObjectURL(item.previewUrl);
  state.queue = [];
  $("queue").replaceChildren();
  updateQueueControls();
  state.images = [];
  state.tiles.clear();
  state.nextCursor = null;
  state.loadSeq += 1;
  $("grid").replaceChildren();
  showSignIn(message);
  $("token-input").focus();
}

async function enterApp() {
  const token = storedToken();
  state.claims = decodeTokenClaims(token) || {};
  const roles = Array.isArray(state.claims.roles) ? state.claims.roles : [];
  state.isAdmin = roles.includes("admin");
  defaultClient.clearCache();
  try {
    state.config = await getConfig();
  } catch (error) {
    if (isAuthError(error)) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(`The broker refused this token: ${error.message}.`);
      return false;
    }
    showSignIn(`Could not reach the broker: ${error.message}`);
    return false;
  }
  renderSession();
  renderConfig();
  show($("boot"), false);
  show($("signin-view"), false);
  show($("app-view"));
  await loadLibrary({ reset: true });
  return true;
}

function renderSession() {
  const sub = typeof state.claims.sub === "string" ? state.claims.sub : "unknown user";
  $("who-sub").textContent = sub;
  $("who-avatar").textContent = sub.trim().charAt(0).toUpperCase() || "?";
  show($("who-role"), state.isAdmin);
  show($("session"));
  show($("owner-field"), state.isAdmin);
}

function renderConfig() {
  const config = state.config;
  const types = config.allowed_types.map(typeLabel).join(", ");
  $("upload-limits").textContent = `${types} · up to ${formatBytes(config.max_upload_bytes)} each`;
  $("file-input").setAttribute("accept", config.allowed_types.join(","));
  const kinds = config.kinds || [];
  const options = (selected) => kinds.map((kind) => h("option", { value: kind, selected: kind === selected, text: kindLabel(kind) }));
  $("upload-kind").replaceChildren(...options(config.default_kind));
  $("kind-input").replaceChildren(...options(null));
  $("filter-kind").replaceChildren(h("option", { value: "", text: "All kinds" }), ...options(null));
  $("filter-kind").value = "";
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim().replace(/^Bearer\s+/i, "");
  if (!token) return setAlert($("signin-error"), "Paste a token first.");
  if (token.split(".").length !== 3) return setAlert($("signin-error"), "That does not look like a JWT (three dot-separated parts).");
  setAlert($("signin-error"), "");
  $("signin-submit").disabled = true;
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    if (await enterApp()) $("main").focus();
  } finally {
    $("signin-submit").disabled = false;
  }
});

$("sign-out").addEventListener("click", () => signOut("You are signed out."));

// ---- upload ------------------------------------------------------------------------------------------

function addFiles(files) {
  for (const file of files) {
    const item = { key: ++state.queueSeq, file, status: "ready", message: "Ready to upload", previewUrl: null };
    try {
      checkFile(file, state.config);
    } catch (error) {
      item.status = "invalid";
      item.message = error.message;
    }
    if (item.status === "ready") item.previewUrl = URL.createObjectURL(file);
    renderQueueItem(item);
    state.queue.push(item);
    $("queue").append(item.node);
  }
  updateQueueControls();
}

function renderQueueItem(item) {
  const { file } = item;
  const name = file.name || "image";
  const thumb = item.previewUrl
    ? h("img", { src: item.previewUrl, alt: `Preview of ${name}` })
    : icon(ICON_IMAGE, "queue-placeholder");
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
    onclick: () => removeQueueItem(item),
  });
  item.remove.append(icon(ICON_CLOSE));
  item.retry = h("button", { type: "button", class: "btn btn-ghost btn-xs", text: "Retry", hidden: true, onclick: () => retryItem(item) });
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
      item.status === "invalid"
        ? null
        : h("label", { class: "visually-hidden", for: captionId, text: `Caption for ${name}` }),
      item.status === "invalid" ? null : item.caption,
      item.status === "invalid" ? null : item.progress,
      h("div", { class: "queue-foot" }, item.statusNode, item.retry),
    ),
    item.remove,
  );
  setItemStatus(item, item.status, item.message);
}

function setItemStatus(item, status, message) {
  item.status = status;
  item.message = message;
  item.node.dataset.state = status;
  item.statusNode.textContent = message;
  item.statusNode.setAttribute("role", status === "error" || status === "invalid" ? "alert" : "status");
  const busy = status === "uploading";
  item.remove.disabled = busy;
  item.caption.disabled = busy || status === "done";
  item.retry.hidden = status !== "error";
}

function setItemProgress(item, percent) {
  const value = Math.max(0, Math.min(100, Math.round(percent)));
  item.progress.setAttribute("aria-valuenow", String(value));
  item.bar.style.width = `${value}%`; // CSSOM, not a style attribute: allowed by the CSP
}

function removeQueueItem(item) {
  if (item.status === "uploading") return;
  if (item.previewUrl) URL.revokeObjectURL(item.previewUrl);
  const index = state.queue.indexOf(item);
  const next = state.queue[index + 1] || state.queue[index - 1];
  state.queue.splice(index, 1);
  item.node.remove();
  updateQueueControls();
  (next ? next.remove : $("pick-files")).focus();
}

function retryItem(item) {
  setItemProgress(item, 0);
  setItemStatus(item, "ready", "Ready to upload");
  updateQueueControls();
  $("start-upload").focus();
}

function updateQueueControls() {
  const ready = state.queue.filter((item) => item.status === "ready").length;
  const start = $("start-upload");
  start.disabled = ready === 0 || state.uploading;
  start.textContent = state.uploading ? "Uploading…" : ready ? `Upload ${plural(ready, "file")}` : "Upload";
  show($("clear-queue"), state.queue.some((item) => item.status !== "uploading"));
  show($("queue-empty"), state.queue.length === 0);
}

async function uploadItem(item, kind) {
  setItemStatus(item, "uploading", "Checking…");
  setItemProgress(item, 0);
  try {
    const caption = item.caption.value.trim();
    item.image = await upload(item.file, {
      kind,
      caption: caption || undefined,
      config: state.config,
      onProgress: ({ phase, percent }) => {
        if (phase === "uploading") {
          setItemProgress(item, percent);
          item.statusNode.textContent = `Uploading… ${percent}%`;
        } else if (phase === "confirming") {
          setItemProgress(item, 100);
          item.statusNode.textContent = "Verifying…";
        }
      },
    });
    setItemProgress(item, 100);
    setItemStatus(item, "done", "Uploaded");
    return true;
  } catch (error) {
    if (isAuthError(error)) throw error;
    setItemStatus(item, "error", error.message || "The upload failed.");
    return false;
  }
}

async function startUploads() {
  const items = state.queue.filter((item) => item.status === "ready");
  if (!items.length || state.uploading) return;
  const kind = $("upload-kind").value;
  state.uploading = true;
  updateQueueControls();
  let done = 0;
  let failed = 0;
  const pending = [...items];
  const worker = async () => {
    while (pending.length) {
      const item = pending.shift();
      if (await uploadItem(item, kind)) done += 1;
      else failed += 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(UPLOAD_CONCURRENCY, items.length) }, worker));
  } catch (error) {
    state.uploading = false;
    report(error);
    return;
  }
  state.uploading = false;
  updateQueueControls();
  if (done) {
    toast(failed ? `Uploaded ${plural(done, "image")}; ${failed} failed.` : `Uploaded ${plural(done, "image")}.`);
    await loadLibrary({ reset: true });
  } else if (failed) {
    toast(`${plural(failed, "upload")} failed.`);
  }
}

function clearQueue() {
  for (const item of [...state.queue]) {
    if (item.status === "uploading") continue;
    if (item.previewUrl) URL.revokeObjectURL(item.previewUrl);
    item.node.remove();
    state.queue.splice(state.queue.indexOf(item), 1);
  }
  updateQueueControls();
  $("pick-files").focus();
}

$("pick-files").addEventListener("click", () => $("file-input").click());
$("file-input").addEventListener("change", (event) => {
  addFiles(event.target.files);
  event.target.value = ""; // choosing the same file again fires change again
});
$("start-upload").addEventListener("click", startUploads);
$("clear-queue").addEventListener("click", clearQueue);

const dropzone = $("dropzone");
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

// ---- library -------------------------------------------------------------------------------------------

function filters() {
  return {
    q: $("search").value.trim(),
    kind: $("filter-kind").value,
    sort: $("sort").value,
    owner: state.isAdmin ? $("filter-owner").value.trim() : "",
  };
}

async function loadLibrary({ reset = false } = {}) {
  const seq = ++state.loadSeq;
  const current = filters();
  const more = $("load-more");
  more.disabled = true;
  $("library").setAttribute("aria-busy", "true");
  try {
    const page = await listImages({
      ...current,
      limit: PAGE_SIZE,
      cursor: reset ? undefined : state.nextCursor || undefined,
    });
    // One batch call for the page's thumbnails (cached URLs are not asked for again).
    const urls = page.images.length ? await signedUrls(page.images.map((image) => image.id)) : {};
    if (seq !== state.loadSeq) return;
    setAlert($("library-error"), "");
    if (reset) {
      state.images = [];
      state.tiles.clear();
      $("grid").replaceChildren();
    }
    const fresh = [];
    for (const image of page.images) {
      if (state.tiles.has(image.id)) continue;
      state.images.push(image);
      fresh.push(renderTile(image, urls[image.id]));
    }
    $("grid").append(...fresh);
    state.nextCursor = page.next_cursor;
    renderCounts(current);
  } catch (error) {
    if (seq === state.loadSeq) report(error, $("library-error"));
  } finally {
    if (seq === state.loadSeq) {
      more.disabled = false;
      $("library").removeAttribute("aria-busy");
    }
  }
}

function renderCounts(current = filters()) {
  const count = state.images.length;
  const filtered = Boolean(current.q || current.kind || current.owner);
  $("library-count").textContent = count
    ? `${plural(count, "image")} shown${state.nextCursor ? " · more available" : ""}`
    : "";
  show($("load-more"), Boolean(state.nextCursor));
  show($("empty"), count === 0);
  show($("grid"), count > 0);
  if (!count) {
    $("empty-title").textContent = filtered ? "No images match" : "No images yet";
    $("empty-text").textContent = filtered
      ? "Try another search, or clear the filters."
      : "Drop images into the upload area above to add the first one.";
    show($("clear-filters"), filtered);
  }
}

function tileContent(image, img) {
  const badges = h("span", { class: "tile-badges" });
  if (image.is_primary) {
    const star = h("span", { class: "badge badge-primary", text: "Primary" });
    star.prepend(icon(ICON_STAR, "icon icon-sm"));
    badges.append(star);
  }
  const meta = [kindLabel(image.kind), image.width && image.height ? `${image.width}×${image.height}` : null];
  if (state.isAdmin) meta.push(image.owner);
  return [
    h("span", { class: "tile-media" }, img, badges),
    h(
      "span",
      { class: "tile-info" },
      h("span", { class: "tile-name", text: image.filename }),
      h("span", { class: "tile-meta", text: meta.filter(Boolean).join(" · ") }),
    ),
  ];
}

function renderTile(image, signed) {
  const img = h("img", {
    alt: altText(image),
    width: image.width || undefined,
    height: image.height || undefined,
    loading: "lazy",
    decoding: "async",
  });
  let retried = false;
  img.addEventListener("error", async () => {
    // An expired or refused URL: ask for a fresh one once, then give up quietly.
    if (retried) return img.closest(".tile-media")?.classList.add("is-broken");
    retried = true;
    invalidate(image.id);
    try {
      const fresh = await signedUrls([image.id]);
      if (fresh[image.id]) img.src = fresh[image.id].url;
    } catch {
      img.closest(".tile-media")?.classList.add("is-broken");
    }
  });
  if (signed) img.src = signed.url;
  const button = h("button", {
    type: "button",
    class: "tile",
    "aria-haspopup": "dialog",
    title: image.caption ? `${image.filename}: ${image.caption}` : image.filename,
  });
  button.append(...tileContent(image, img));
  button.addEventListener("click", () => openDetails(image.id, button));
  const item = h("li", { class: "grid-item", dataset: { id: image.id } }, button);
  state.tiles.set(image.id, { item, img, button });
  return item;
}

/** Re-render a tile's text after an edit, keeping its (loaded) image. */
function refreshTile(image) {
  const index = state.images.findIndex((candidate) => candidate.id === image.id);
  if (index >= 0) state.images[index] = image;
  const tile = state.tiles.get(image.id);
  if (!tile) return;
  tile.img.alt = altText(image);
  tile.button.title = image.caption ? `${image.filename}: ${image.caption}` : image.filename;
  tile.button.replaceChildren(...tileContent(image, tile.img));
}

function removeTile(id) {
  const tile = state.tiles.get(id);
  state.images = state.images.filter((image) => image.id !== id);
  state.tiles.delete(id);
  if (tile) tile.item.remove();
  renderCounts();
}

const reload = () => loadLibrary({ reset: true });
$("search").addEventListener("input", debounce(reload, SEARCH_DEBOUNCE_MS));
$("filter-owner").addEventListener("input", debounce(reload, SEARCH_DEBOUNCE_MS));
$("filter-kind").addEventListener("change", reload);
$("sort").addEventListener("change", reload);
$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  reload();
});
$("load-more").addEventListener("click", () => loadLibrary());
$("clear-filters").addEventListener("click", () => {
  $("search").value = "";
  $("filter-kind").value = "";
  $("filter-owner").value = "";
  reload();
  $("search").focus();
});

// ---- details dialog ---------------------------------------------------------------------------------

const dialog = $("details");

function metaRow(term, value, wide = false) {
  return h("div", { class: wide ? "meta-item meta-wide" : "meta-item" }, h("dt", { text: term }), h("dd", { text: value }));
}

function renderDetails(image) {
  $("details-title").textContent = image.filename;
  const img = $("details-img");
  img.alt = altText(image);
  if (image.width && image.height) {
    img.width = image.width;
    img.height = image.height;
  }
  const badges = [h("span", { class: "badge", text: kindLabel(image.kind) })];
  if (image.is_primary) {
    const star = h("span", { class: "badge badge-primary", text: "Primary" });
    star.prepend(icon(ICON_STAR, "icon icon-sm"));
    badges.push(star);
  }
  $("details-badges").replaceChildren(...badges);
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
  primary.disabled = image.is_primary;
  primary.textContent = image.is_primary ? "Primary" : "Set as primary";
}

async function showSignedUrl(image) {
  try {
    const signed = await signedUrl(image.id);
    if (state.current?.id !== image.id) return;
    const img = $("details-img");
    if (img.getAttribute("src") !== signed.url) img.src = signed.url;
    $("url-output").value = signed.url;
    $("open-full").href = signed.url;
    state.expiresAt = Date.parse(signed.expires_at);
    renderExpiry();
  } catch (error) {
    if (state.current?.id === image.id) report(error, $("details-error"));
  }
}

function renderExpiry() {
  const left = state.expiresAt - Date.now();
  const at = timeOnly.format(new Date(state.expiresAt));
  $("url-expiry").textContent = left > 0 ? `Expires at ${at} (${fromNow(left)})` : `Expired at ${at}`;
  // The module's cache hands out a fresh URL shortly before this one expires.
  if (left < 30_000 && state.current) showSignedUrl(state.current);
}

function openDetails(id, opener) {
  const image = state.images.find((candidate) => candidate.id === id);
  if (!image) return;
  state.current = image;
  state.opener = opener;
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
  clearInterval(state.expiryTimer);
  state.expiryTimer = setInterval(() => state.expiresAt && renderExpiry(), 10_000);
}

dialog.addEventListener("close", () => {
  clearInterval(state.expiryTimer);
  state.current = null;
  state.expiresAt = 0;
  const opener = state.opener;
  state.opener = null;
  if (opener && opener.isConnected) opener.focus();
  else $("library-title").focus();
});
// A click on the backdrop (outside the panel) closes it, as Escape does.
dialog.addEventListener("click", (event) => {
  if (event.target === dialog) dialog.close();
});
$("details-close").addEventListener("click", () => dialog.close());

async function applyChanges(changes, { status } = {}) {
  const image = state.current;
  if (!image) return null;
  setAlert($("details-error"), "");
  try {
    const updated = await patchImage(image.id, changes);
    if (changes.is_primary) {
      // At most one primary per owner and kind: the API un-marked the previous one.
      for (const other of state.images) {
        if (other.id !== updated.id && other.owner === updated.owner && other.kind === updated.kind && other.is_primary) {
          refreshTile({ ...other, is_primary: false });
        }
      }
    }
    refreshTile(updated);
    if (state.current?.id === updated.id) {
      state.current = updated;
      renderDetails(updated);
      if (status) $("caption-status").textContent = status;
    }
    return updated;
  } catch (error) {
    report(error, $("details-error"));
    return null;
  }
}

$("caption-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("caption-save");
  button.disabled = true;
  try {
    const caption = $("caption-input").value.trim();
    await applyChanges({ caption: caption || null }, { status: "Saved" });
  } finally {
    button.disabled = false;
  }
});

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

$("copy-url").addEventListener("click", async () => {
  const input = $("url-output");
  if (!input.value) return;
  let copied;
  try {
    await navigator.clipboard.writeText(input.value);
    copied = true;
  } catch {
    input.select();
    copied = document.execCommand("copy");
  }
  toast(copied ? "Signed URL copied." : "Select the URL and copy it.");
});

$("delete-btn").addEventListener("click", () => {
  const image = state.current;
  if (!image) return;
  $("delete-question").textContent = `Delete “${image.filename}”? It leaves the bucket and the library; this cannot be undone.`;
  show($("delete-confirm"));
  $("delete-btn").disabled = true;
  $("delete-cancel").focus();
});

$("delete-cancel").addEventListener("click", () => {
  show($("delete-confirm"), false);
  $("delete-btn").disabled = false;
  $("delete-btn").focus();
});

$("delete-yes").addEventListener("click", async () => {
  const image = state.current;
  if (!image) return;
  const button = $("delete-yes");
  button.disabled = true;
  try {
    await deleteImage(image.id);
    const index = state.images.findIndex((candidate) => candidate.id === image.id);
    const neighbour = state.images[index + 1] || state.images[index - 1];
    removeTile(image.id);
    state.opener = neighbour ? state.tiles.get(neighbour.id)?.button : null;
    dialog.close();
    toast(`Deleted “${image.filename}”.`);
  } catch (error) {
    report(error, $("details-error"));
  } finally {
    button.disabled = false;
  }
});

// ---- boot -------------------------------------------------------------------------------------------

// The link `make run` prints, followed in a tab already showing this page, only changes the
// fragment: the page is not loaded again.
window.addEventListener("hashchange", () => {
  if (takeTokenFromFragment()) enterApp();
});

if (storedToken()) {
  enterApp();
} else {
  showSignIn();
}
