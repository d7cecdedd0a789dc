// The admin UI's API client: the browser module (../broker.js, the same instance any page gets
// at /static/broker.js) signed in with this tab's token, and the choices the UI makes about it:
// what the grid signs (the `thumb` variant), what the details dialog shows (`medium`, with a
// link to the original), how a file is sent. Views import the API from here only, so those
// choices live in one place. A variant not made yet is answered with the original meanwhile.

import {
  BrokerError,
  configure,
  createUpload,
  defaultClient,
  getConfig,
  invalidate,
  signedUrl,
  signedUrls,
} from "../broker.js";
import { storedToken } from "./session.js";

export { checkFile, deleteImage, getConfig, listImages, patchImage } from "../broker.js";

configure({ getToken: storedToken });

const GRID_VARIANT = "thumb";
const DETAILS_VARIANT = "medium";

/** Whether the broker refused the token (the page signs out). */
export const isAuthError = (error) => error instanceof BrokerError && error.status === 401;

/** Forget cached signed URLs and /config (another identity is about to be used). */
export const clearCache = () => defaultClient.clearCache();

/** `name` when the broker makes that variant (GET /config), else undefined: the original. */
async function configured(name) {
  const config = await getConfig();
  return (config.variants || []).some((variant) => variant.name === name) ? name : undefined;
}

/** Whether a signed answer shows the variant asked for (not the original standing in). */
export const showsVariant = (signed) => Boolean(signed && signed.variant && signed.variant !== "original");

/** Whether the grid's variant of `image` is still to be made (its tile may be upgraded). */
export const thumbnailPending = (image) => image.variants?.[GRID_VARIANT]?.state === "pending";

/** Signed URLs for grid thumbnails, `{id: {url, expires_at, variant}}`: one batch call for those
 * not cached. */
export const thumbnailUrls = async (ids) => signedUrls(ids, { variant: await configured(GRID_VARIANT) });

/** A fresh signed URL for a thumbnail whose URL failed to load (expired or refused). */
export async function refreshThumbnailUrl(id) {
  invalidate(id);
  return (await thumbnailUrls([id]))[id];
}

/** The signed URL of the picture the details dialog shows: `{url, expires_at, variant}`. */
export const detailsUrl = async (id) => signedUrl(id, { variant: await configured(DETAILS_VARIANT) });

/** The signed URL of the original, which the dialog copies and opens: `{url, expires_at}`. */
export const originalUrl = (id) => signedUrl(id);

/**
 * Send one file: check, hash, presign, PUT to the bucket, confirm (a large file in parts, which
 * can be paused, and resumed after a reload by choosing it again). Returns broker.js's task:
 * `{promise, pause(), resume(), multipart}`; `promise` resolves with the image.
 * Options: kind, caption, visibility, config, onProgress({phase, percent, parts}) as broker.js
 * takes them.
 */
export const sendFile = (file, options) => createUpload(file, options);
