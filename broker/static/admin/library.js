// The library: the filters, the grid of tiles a page at a time, the counts and the empty state.
// It owns the list of images shown; the details dialog tells it what changed. The owner filter
// is everyone's: for an admin or a reader it narrows everyone's images to one user's; for anyone
// else it opens that user's public gallery (their own images when left empty).

import { listImages, showsVariant, thumbnailPending, thumbnailUrls } from "./api.js";
import { openDetails } from "./details.js";
import { $, debounce, h, setAlert, show } from "./dom.js";
import { report } from "./feedback.js";
import { plural } from "./format.js";
import { kindOptions } from "./image-view.js";
import { mayWrite, seesEverything, session } from "./session.js";
import { createTile, updateTile } from "./tile.js";

const PAGE_SIZE = 24;
const SEARCH_DEBOUNCE_MS = 250;
// A tile showing its original while the worker makes its thumbnail asks again after these
// (broker.js caches such an answer only briefly, see PENDING_VARIANT_RECHECK_MS there).
const UPGRADE_AFTER_MS = [5_000, 10_000, 20_000, 40_000];

let images = []; // the images shown, in order
const tiles = new Map(); // id → {item, img, button}
let nextCursor = null;
let loadSeq = 0; // answers to an older load than the latest are dropped

/** Wire the filters and "Load more". */
export function initLibrary() {
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
}

/** Offer the broker's kinds as filters (from GET /config), and say what the owner filter does. */
export function configureLibrary(config) {
  $("filter-kind").replaceChildren(h("option", { value: "", text: "All kinds" }), ...kindOptions(config.kinds || []));
  $("filter-kind").value = "";
  $("filter-owner").placeholder = seesEverything() ? "Everyone" : "You";
  renderOwnerHint();
}

/** Whose images are shown, in a sentence (empty when it is the usual view). */
function renderOwnerHint(owner = filters().owner) {
  const other = owner && owner !== session.sub;
  let text = "";
  if (other && !seesEverything()) text = `${owner}’s public gallery: the images ${owner} made public.`;
  else if (other) text = `All of ${owner}’s images.`;
  $("owner-hint").textContent = text;
}

/** Forget every image shown (signing out); a load under way is dropped when it answers. */
export function resetLibrary() {
  images = [];
  tiles.clear();
  nextCursor = null;
  loadSeq += 1;
  $("grid").replaceChildren();
}

/** Load the first page (`reset`) or the next one, with the filters as they are now. */
export async function loadLibrary({ reset = false } = {}) {
  const seq = ++loadSeq;
  const current = filters();
  const more = $("load-more");
  more.disabled = true;
  $("library").setAttribute("aria-busy", "true");
  try {
    const page = await listImages({
      ...current,
      limit: PAGE_SIZE,
      cursor: reset ? undefined : nextCursor || undefined,
    });
    // One batch call for the page's thumbnails (cached URLs are not asked for again).
    const urls = page.images.length ? await thumbnailUrls(page.images.map((image) => image.id)) : {};
    if (seq !== loadSeq) return;
    setAlert($("library-error"), "");
    if (reset) {
      images = [];
      tiles.clear();
      $("grid").replaceChildren();
    }
    const fresh = [];
    for (const image of page.images) {
      if (tiles.has(image.id)) continue;
      images.push(image);
      const tile = createTile(image, urls[image.id], { onOpen: openImage });
      tiles.set(image.id, tile);
      fresh.push(tile.item);
    }
    $("grid").append(...fresh);
    nextCursor = page.next_cursor;
    renderCounts(current);
    renderOwnerHint(current.owner);
    const waiting = page.images.filter((image) => thumbnailPending(image) && !showsVariant(urls[image.id]));
    upgradeWhenReady(waiting.map((image) => image.id));
  } catch (error) {
    if (seq === loadSeq) report(error, $("library-error"));
  } finally {
    if (seq === loadSeq) {
      more.disabled = false;
      $("library").removeAttribute("aria-busy");
    }
  }
}

/** Swap the tiles of `ids` to their thumbnails once the worker has made them: a few tries,
 * further apart each time, one batch call each. A tile gone from the grid (a new search, a
 * reset) is dropped; loading the next page leaves the others waiting. */
function upgradeWhenReady(ids, attempt = 0) {
  const waiting = new Map(ids.filter((id) => tiles.has(id)).map((id) => [id, tiles.get(id)]));
  if (!waiting.size || attempt >= UPGRADE_AFTER_MS.length) return;
  setTimeout(async () => {
    const shown = [...waiting.keys()].filter((id) => tiles.get(id) === waiting.get(id));
    if (!shown.length) return;
    let urls;
    try {
      urls = await thumbnailUrls(shown);
    } catch {
      return; // the tiles keep their originals; the next load asks again
    }
    const still = [];
    for (const id of shown) {
      if (tiles.get(id) !== waiting.get(id)) continue;
      if (showsVariant(urls[id])) tiles.get(id).img.src = urls[id].url;
      else still.push(id);
    }
    upgradeWhenReady(still, attempt + 1);
  }, UPGRADE_AFTER_MS[attempt]);
}

/** The list query the filters describe. */
function filters() {
  return {
    q: $("search").value.trim(),
    kind: $("filter-kind").value,
    sort: $("sort").value,
    owner: $("filter-owner").value.trim(),
  };
}

function renderCounts(current = filters()) {
  const count = images.length;
  const filtered = Boolean(current.q || current.kind || current.owner);
  $("library-count").textContent = count
    ? `${plural(count, "image")} shown${nextCursor ? " · more available" : ""}`
    : "";
  show($("load-more"), Boolean(nextCursor));
  show($("empty"), count === 0);
  show($("grid"), count > 0);
  if (!count) {
    const gallery = current.owner && current.owner !== session.sub && !seesEverything();
    $("empty-title").textContent = gallery ? "No public images" : filtered ? "No images match" : "No images yet";
    $("empty-text").textContent = gallery
      ? `${current.owner} has made no image public that matches (or there is no such user).`
      : filtered
        ? "Try another search, or clear the filters."
        : mayWrite()
          ? "Drop images into the upload area above to add the first one."
          : "Images appear here as users upload them.";
    show($("clear-filters"), filtered);
  }
}

function openImage(id, button) {
  const image = images.find((candidate) => candidate.id === id);
  if (image) openDetails(image, { opener: button, onChanged: imageChanged, onDeleted: imageDeleted });
}

/** Show an edited image (its tile, and the one its becoming primary un-marked). */
function imageChanged(updated) {
  const before = images.find((image) => image.id === updated.id);
  if (updated.is_primary && !before?.is_primary) {
    // At most one primary per owner and kind: the API un-marked the previous one.
    for (const other of images) {
      if (other.id !== updated.id && other.owner === updated.owner && other.kind === updated.kind && other.is_primary) {
        showImage({ ...other, is_primary: false });
      }
    }
  }
  showImage(updated);
}

/** Drop a deleted image; the tile that takes its place (for focus), if any. */
function imageDeleted(image) {
  const index = images.findIndex((candidate) => candidate.id === image.id);
  const neighbour = images[index + 1] || images[index - 1];
  const tile = tiles.get(image.id);
  images = images.filter((candidate) => candidate.id !== image.id);
  tiles.delete(image.id);
  if (tile) tile.item.remove();
  renderCounts();
  return neighbour ? tiles.get(neighbour.id)?.button : null;
}

function showImage(image) {
  const index = images.findIndex((candidate) => candidate.id === image.id);
  if (index >= 0) images[index] = image;
  const tile = tiles.get(image.id);
  if (tile) updateTile(tile, image);
}
