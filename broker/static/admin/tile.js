// A grid tile: one image's thumbnail, badges, name and facts, as a button that opens its details.
// Every tile is built and re-built here, so what a tile shows is decided in one place.

import { refreshThumbnailUrl } from "./api.js";
import { h } from "./dom.js";
import { kindLabel } from "./format.js";
import { altText, badges, titleText } from "./image-view.js";
import { session } from "./session.js";

/** A tile for `image`, its thumbnail at `signed.url`; `onOpen(id, button)` on activation. */
export function createTile(image, signed, { onOpen }) {
  const img = h("img", {
    alt: altText(image),
    width: image.width || undefined,
    height: image.height || undefined,
    loading: "lazy",
    decoding: "async",
  });
  let retried = false;
  const broken = () => img.closest(".tile-media")?.classList.add("is-broken");
  img.addEventListener("error", async () => {
    // An expired or refused URL: ask for a fresh one once, then give up quietly.
    if (retried) return broken();
    retried = true;
    try {
      const fresh = await refreshThumbnailUrl(image.id);
      if (fresh) img.src = fresh.url;
    } catch {
      broken();
    }
  });
  if (signed) img.src = signed.url;
  const button = h("button", { type: "button", class: "tile", "aria-haspopup": "dialog", title: titleText(image) });
  button.append(...tileContent(image, img));
  button.addEventListener("click", () => onOpen(image.id, button));
  const item = h("li", { class: "grid-item", dataset: { id: image.id } }, button);
  return { item, img, button };
}

/** Show an edited image on its tile, keeping the (loaded) thumbnail. */
export function updateTile(tile, image) {
  tile.img.alt = altText(image);
  tile.button.title = titleText(image);
  tile.button.replaceChildren(...tileContent(image, tile.img));
}

function tileContent(image, img) {
  const facts = [kindLabel(image.kind), image.width && image.height ? `${image.width}×${image.height}` : null];
  if (image.owner !== session.sub) facts.push(image.owner); // someone else's (shown to admins, readers, a gallery)
  return [
    h("span", { class: "tile-media" }, img, h("span", { class: "tile-badges" }, ...badges(image))),
    h(
      "span",
      { class: "tile-info" },
      h("span", { class: "tile-name", text: image.filename }),
      h("span", { class: "tile-meta", text: facts.filter(Boolean).join(" · ") }),
    ),
  ];
}
