// How an image is described wherever it appears (a grid tile, the details dialog): its alt text,
// its title, its badges, the choice of kinds. A new fact about images (public, its variants)
// gets its label or badge here, and every view shows it alike.

import { ICONS, h, icon } from "./dom.js";
import { kindLabel } from "./format.js";

/** The image's alt text: its caption, else its filename. */
export const altText = (image) => image.caption || image.filename;

/** The image's tooltip: its filename, with the caption when there is one. */
export const titleText = (image) => (image.caption ? `${image.filename}: ${image.caption}` : image.filename);

/** The image's badges: "Primary" when it is; its kind first when `withKind` (the grid says it in words). */
export function badges(image, { withKind = false } = {}) {
  const nodes = [];
  if (withKind) nodes.push(h("span", { class: "badge", text: kindLabel(image.kind) }));
  if (image.is_primary) {
    const star = h("span", { class: "badge badge-primary", text: "Primary" });
    star.prepend(icon(ICONS.star, "icon icon-sm"));
    nodes.push(star);
  }
  return nodes;
}

/** `<option>`s for the broker's kinds, `selected` chosen. */
export function kindOptions(kinds, selected = null) {
  return kinds.map((kind) => h("option", { value: kind, selected: kind === selected, text: kindLabel(kind) }));
}
