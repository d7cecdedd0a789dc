// The admin UI's API client: the browser module (../broker.js, the same instance any page gets
// at /static/broker.js) signed in with this tab's token, and the choices the UI makes about it:
// what the grid signs, what the details dialog signs, how a file is sent. Views import the API
// from here only, so those choices live in one place.

import { BrokerError, configure, createUpload, defaultClient, invalidate, signedUrl, signedUrls } from "../broker.js";
import { storedToken } from "./session.js";

export { checkFile, deleteImage, getConfig, listImages, patchImage } from "../broker.js";

configure({ getToken: storedToken });

/** Whether the broker refused the token (the page signs out). */
export const isAuthError = (error) => error instanceof BrokerError && error.status === 401;

/** Forget cached signed URLs and /config (another identity is about to be used). */
export const clearCache = () => defaultClient.clearCache();

/** Signed URLs for grid thumbnails, `{id: {url, expires_at}}`: one batch call for those not cached. */
export const thumbnailUrls = (ids) => signedUrls(ids);

/** A fresh signed URL for a thumbnail whose URL failed to load (expired or refused). */
export async function refreshThumbnailUrl(id) {
  invalidate(id);
  return (await thumbnailUrls([id]))[id];
}

/** The signed URL the details dialog shows, copies and opens: `{url, expires_at}`. */
export const detailsUrl = (id) => signedUrl(id);

/**
 * Send one file: check, hash, presign, PUT to the bucket, confirm (a large file in parts, which
 * can be paused, and resumed after a reload by choosing it again). Returns broker.js's task:
 * `{promise, pause(), resume(), multipart}`; `promise` resolves with the image.
 * Options: kind, caption, visibility, config, onProgress({phase, percent, parts}) as broker.js
 * takes them.
 */
export const sendFile = (file, options) => createUpload(file, options);
