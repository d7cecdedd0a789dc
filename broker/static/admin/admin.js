// The admin UI: sign in with a JWT, upload, browse, edit and delete images.
//
// This is the page's one script (index.html loads it as a module, no build step); it signs in and
// out and wires the parts, each a module of its own:
//   session.js  the token (sessionStorage) and who is signed in
//   api.js      the API client: the browser module ../broker.js with this tab's token
//   upload.js   the upload panel and its pipeline; queue-item.js draws one file of its list
//   library.js  the filters and the grid; tile.js draws one image of it
//   details.js  the details dialog of one image
//   feedback.js toasts, alerts, and signing out when the broker refuses the token
//   dom.js, format.js, image-view.js  building nodes, text for people, how an image is described
// Data is rendered with DOM APIs and textContent only, never as HTML.

import { clearCache, getConfig, isAuthError } from "./api.js";
import { closeDetails, configureDetails, initDetails } from "./details.js";
import { $, setAlert, show } from "./dom.js";
import { whenUnauthorized } from "./feedback.js";
import { configureLibrary, initLibrary, loadLibrary, resetLibrary } from "./library.js";
import {
  forgetToken,
  mayWrite,
  session,
  startSession,
  storedToken,
  storeToken,
  takeTokenFromFragment,
} from "./session.js";
import { configureUpload, initUpload, resetUpload } from "./upload.js";

// A token in the address bar moves to sessionStorage before the page asks the broker anything.
takeTokenFromFragment();

function showSignIn(message) {
  show($("boot"), false);
  show($("app-view"), false);
  show($("session"), false);
  show($("signin-view"));
  setAlert($("signin-error"), message);
  $("token-input").value = "";
}

function signOut(message) {
  forgetToken();
  clearCache();
  closeDetails();
  resetUpload();
  resetLibrary();
  showSignIn(message);
  $("token-input").focus();
}

/** Sign in with the stored token: ask for /config, then show the app; false when refused. */
async function enterApp() {
  clearCache();
  let config;
  try {
    config = await getConfig();
  } catch (error) {
    if (isAuthError(error)) {
      forgetToken();
      showSignIn(`The broker refused this token: ${error.message}.`);
      return false;
    }
    showSignIn(`Could not reach the broker: ${error.message}`);
    return false;
  }
  startSession(config);
  renderSession();
  configureUpload(config);
  configureLibrary(config);
  configureDetails(config);
  show($("upload-panel"), mayWrite()); // a reader token changes nothing: no uploads
  show($("boot"), false);
  show($("signin-view"), false);
  show($("app-view"));
  await loadLibrary({ reset: true });
  return true;
}

function renderSession() {
  const sub = typeof session.claims.sub === "string" ? session.claims.sub : "unknown user";
  $("who-sub").textContent = sub;
  $("who-avatar").textContent = sub.trim().charAt(0).toUpperCase() || "?";
  // The role that shapes what this page offers: admin (changes everything) or reader (nothing).
  $("who-role").textContent = session.isAdmin ? "admin" : "reader";
  show($("who-role"), session.isAdmin || session.isReader);
  show($("session"));
}

whenUnauthorized((error) => signOut(`Signed out: ${error.message}. Sign in again.`));
initUpload({ uploaded: () => loadLibrary({ reset: true }) });
initLibrary();
initDetails();

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim().replace(/^Bearer\s+/i, "");
  if (!token) return setAlert($("signin-error"), "Paste a token first.");
  if (token.split(".").length !== 3) return setAlert($("signin-error"), "That does not look like a JWT (three dot-separated parts).");
  setAlert($("signin-error"), "");
  $("signin-submit").disabled = true;
  storeToken(token);
  try {
    if (await enterApp()) $("main").focus();
  } finally {
    $("signin-submit").disabled = false;
  }
});

$("sign-out").addEventListener("click", () => signOut("You are signed out."));

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
