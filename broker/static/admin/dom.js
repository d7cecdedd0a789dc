// Small DOM helpers the admin UI's modules share. Data becomes text (textContent, attributes),
// never HTML: that is what keeps a hostile filename or caption inert.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** Build an element. Props: class, text (textContent), dataset, on<event>, else attributes. */
export function h(tag, props = {}, ...children) {
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

/** The path data of the icons drawn in script (24×24 boxes; the page's own are in the HTML). */
export const ICONS = {
  close: ["M6 6l12 12M18 6L6 18"],
  image: ["M4 5h16v14H4z", "M4 16l5-5 4 4 3-3 4 4"],
  link: ["M10 14a4.5 4.5 0 006.4 0l3-3a4.5 4.5 0 00-6.4-6.4l-1.2 1.2", "M14 10a4.5 4.5 0 00-6.4 0l-3 3a4.5 4.5 0 006.4 6.4l1.2-1.2"],
  star: ["M12 3.5l2.6 5.3 5.9.9-4.3 4.1 1 5.8-5.2-2.7-5.2 2.7 1-5.8-4.3-4.1 5.9-.9z"],
};

/** An inline SVG icon, hidden from assistive technology (its button or badge carries the name). */
export function icon(paths, className = "icon") {
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

/** Show or hide a node (the `hidden` attribute, which the stylesheet honours). */
export function show(node, visible = true) {
  node.hidden = !visible;
}

/** Put a message in an alert node and show it; an empty message hides it. */
export function setAlert(node, message) {
  node.textContent = message || "";
  show(node, Boolean(message));
}

/** `fn` called once input has paused for `ms`. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Copy a read-only input's value to the clipboard; true when it was copied. */
export async function copyFrom(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    // Without clipboard permission (or over plain HTTP), the old way still works in most browsers.
    input.select();
    return document.execCommand("copy");
  }
}
