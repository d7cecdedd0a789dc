// How an image is described wherever it appears (a grid tile, the details dialog): its alt text,
// its title, its badges, the choice of kinds. A new fact about images (public, its variants)
// gets its label or badge here, and every view shows it alike.

import { ICONS, h, icon } from "./dom.js";
import { kindLabel } from "./format.js";

/** The image's alt text: its caption, else its filename. */
export const altText = (image) => image.caption || image.filename;

/** The image's tooltip: its filename, with the caption when there is one. */
export const titleText = (image) => (image.caption ? `${image.filename}: ${image.caption}` : image.filename);

/**
 * The image's badges: "Public" when anyone with its link may see it, "Primary" when it is; its
 * kind first when `withKind` (the grid says it in words).
 */
export function badges(image, { withKind = false } = {}) {
  const nodes = [];
  if (withKind) nodes.push(h("span", { class: "badge", text: kindLabel(image.kind) }));
  if (isPublic(image)) {
    const link = h("span", { class: "badge badge-public", text: "Public", title: "Anyone with its link can see it" });
    link.prepend(icon(ICONS.link, "icon icon-sm"));
    nodes.push(link);
  }
  if (image.is_primary) {
    const star = h("span", { class: "badge badge-primary", text: "Primary" });
    star.prepend(icon(ICONS.star, "icon icon-sm"));
    nodes.push(star);
  }
  return nodes;
}

/** Whether the image is public (it then has a public link). */
export const isPublic = (image) => image.visibility === "public" && Boolean(image.public_url);

/** What a visibility means, in a sentence. */
export function visibilityHint(visibility) {
  return visibility === "public"
    ? "Public: every signed-in user can see it, and anyone with its link, which needs no token."
    : "Private: only its owner, admins and reader backends can see it.";
}

/** `<option>`s for the broker's kinds, `selected` chosen. */
export function kindOptions(kinds, selected = null) {
  return kinds.map((kind) => h("option", { value: kind, selected: kind === selected, text: kindLabel(kind) }));
}
