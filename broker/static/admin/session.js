// Who is signed in. The token lives in sessionStorage (this tab only) and is sent only in
// Authorization headers; a token passed in the URL fragment (#token=…) is moved to sessionStorage
// and removed from the address bar before the page asks the broker anything.

import { decodeTokenClaims } from "../broker.js";

const TOKEN_KEY = "broker.admin.token";

/** What the signed-in page knows about its user and the broker; set by `startSession`. */
export const session = {
  claims: {}, // decoded WITHOUT verification: for display only (the broker checks the token)
  sub: "",
  isAdmin: false,
  isReader: false, // sees and signs every image, changes nothing (a backend's role)
  config: null, // GET /config: allowed types, size limit, kinds, public kinds
};

/** Whether the signed-in user sees every image (an admin or a reader). */
export const seesEverything = () => session.isAdmin || session.isReader;

/** Whether the signed-in user may upload: anyone but a reader (an admin holding both may). */
export const mayWrite = () => session.isAdmin || !session.isReader;

/**
 * Whether the signed-in user may change `image` (the broker decides; this only spares people
 * controls that would be refused): its owner or an admin, never a reader.
 */
export const mayChange = (image) => session.isAdmin || (mayWrite() && image.owner === session.sub);

/** The stored token, or null. */
export const storedToken = () => sessionStorage.getItem(TOKEN_KEY);

/** Keep a token for this tab. */
export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Forget the token. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Move a `#token=…` from the address bar to sessionStorage; true when there was one. */
export function takeTokenFromFragment() {
  if (!location.hash || location.hash.length < 2) return false;
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("token")) return false;
  const token = (params.get("token") || "").trim();
  if (token) storeToken(token);
  params.delete("token");
  const rest = params.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return Boolean(token);
}

/** Start the session: the stored token's claims, and the broker's /config. */
export function startSession(config) {
  session.claims = decodeTokenClaims(storedToken()) || {};
  session.sub = typeof session.claims.sub === "string" ? session.claims.sub : "";
  const roles = Array.isArray(session.claims.roles) ? session.claims.roles : [];
  session.isAdmin = roles.includes("admin");
  session.isReader = roles.includes("reader");
  session.config = config;
}
