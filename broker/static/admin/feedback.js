// Telling the user: a toast for outcomes, an alert next to what failed, and signing out when the
// broker refuses the token (wherever that happens).

import { isAuthError } from "./api.js";
import { $, setAlert, show } from "./dom.js";

const TOAST_MS = 4000;

let toastTimer = 0;
let onUnauthorized = () => {};

/** Show a short message in the toast for a few seconds. */
export function toast(message) {
  const node = $("toast");
  node.textContent = message;
  show(node);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(node, false), TOAST_MS);
}

/** What to do when the broker refuses the token: set once, by the page (it signs out). */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/** Show an API error in `node` (else in the toast); a refused token signs out instead. */
export function report(error, node) {
  if (isAuthError(error)) {
    onUnauthorized(error);
    return;
  }
  if (node) setAlert(node, error.message || String(error));
  else toast(error.message || String(error));
}
