/**
 * broker.js: the image broker's browser module (an ES module; no build step, no dependencies
 * beyond the one vendored file below). Served at /static/broker.js.
 *
 *   import { configure, upload, signedUrls } from "/static/broker.js";
 *   configure({ getToken: () => myToken });
 *   const image = await upload(file, { kind: "gallery", onProgress: (p) => bar.value = p.percent });
 *   const { url } = (await signedUrls([image.id]))[image.id];
 *
 * Bytes never pass through the broker: upload() hashes the file here, asks the broker for a
 * presigned PUT, sends the file straight to the bucket with exactly the headers the broker
 * returned (XMLHttpRequest, for real upload progress events), then asks the broker to confirm.
 *
 * MD5 comes from vendor/spark-md5.js: SparkMD5 3.0.2 from npm, license (WTFPL OR MIT).
 * WebCrypto has no MD5, and the bucket checks the Content-MD5 header. SparkMD5 is used because
 * it is plain JavaScript with no WebAssembly and no eval, so it runs under the admin UI's strict
 * CSP (`script-src 'self'`). hash-wasm would need 'wasm-unsafe-eval' there. SparkMD5 is small
 * (one file, no dependencies), widely used for this exact job (Rails Active Storage direct
 * uploads use it), and hashes incrementally from ArrayBuffers, so a large file is read in 2 MiB
 * slices and memory stays flat.
 */

import SparkMD5 from "./vendor/spark-md5.js";

/** Where the broker is: the origin (and path prefix) this module was served from. */
const DEFAULT_BASE_URL = new URL("..", import.meta.url).href.replace(/\/+$/, "");
const MAX_BATCH = 100; // POST /images/signed-urls takes at most 100 ids
const HASH_CHUNK = 2 * 1024 * 1024;
const PUT_RETRIES = 2; // after the first attempt: 3 tries in all
const PUT_BACKOFF_MS = 600;

// ---- errors ------------------------------------------------------------------------------------

/** Any failure; `code` is the API's error code (or one of this module's), `status` the HTTP one. */
export class BrokerError extends Error {
  constructor(message, { code = "error", status = 0, details = null, retryAfter = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "BrokerError";
    this.code = code;
    this.status = status;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** The file's type is not allowed (checked here from /config, or a 415 from the broker). */
export class UnsupportedTypeError extends BrokerError {
  constructor(message, options = {}) {
    super(message, { code: "unsupported_type", status: 415, ...options });
    this.name = "UnsupportedTypeError";
  }
}

/** The file is over the size limit (checked here from /config, or a 413 from the broker). */
export class TooLargeError extends BrokerError {
  constructor(message, options = {}) {
    super(message, { code: "too_large", status: 413, ...options });
    this.name = "TooLargeError";
  }
}

/** The presigned URL expired before the bucket received the file (the bucket answered 403). */
export class UrlExpiredError extends BrokerError {
  constructor(message = "The upload URL expired before the upload finished; try again.", options = {}) {
    super(message, { code: "url_expired", status: 403, ...options });
    this.name = "UrlExpiredError";
  }
}

/** The broker or the bucket could not be reached (offline, DNS, CORS refused, connection reset). */
export class NetworkError extends BrokerError {
  constructor(message = "Network error: the server could not be reached.", options = {}) {
    super(message, { code: "network_error", status: 0, ...options });
    this.name = "NetworkError";
  }
}

/** The caller aborted (an AbortSignal fired). */
export class AbortedError extends BrokerError {
  constructor(message = "The upload was cancelled.", options = {}) {
    super(message, { code: "aborted", status: 0, ...options });
    this.name = "AbortedError";
  }
}

/** The error an API response describes (the contract's `{"error": {code, message, details}}`). */
function apiError(status, body, headers) {
  const error = body && typeof body === "object" && body.error ? body.error : {};
  const message = typeof error.message === "string" && error.message ? error.message : `HTTP ${status}`;
  const retry = headers ? Number.parseInt(headers.get("Retry-After") || "", 10) : NaN;
  const options = {
    code: error.code || "http_" + status,
    status,
    details: error.details || null,
    retryAfter: Number.isFinite(retry) ? retry : null,
  };
  if (status === 415) return new UnsupportedTypeError(message, options);
  if (status === 413) return new TooLargeError(message, options);
  return new BrokerError(message, options);
}

// ---- small helpers ------------------------------------------------------------------------------

/** "1.2 MB", "640 KB", "12 bytes" (binary multiples, so a 10 MiB limit reads "10 MB"). */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1024;
    unit += 1;
  } while (value >= 1024 && unit < units.length - 1);
  return `${value >= 100 ? Math.round(value) : value.toFixed(1).replace(/\.0$/, "")} ${units[unit]}`;
}

/** The claims of a JWT, decoded WITHOUT verification: for display only (who is signed in). */
export function decodeTokenClaims(token) {
  try {
    const part = String(token).split(".")[1];
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** The MIME type without parameters, lower-cased ("image/PNG; x=y" → "image/png"). */
function normaliseType(type) {
  return String(type || "").split(";")[0].trim().toLowerCase();
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function readSlice(blob) {
  if (typeof blob.arrayBuffer === "function") return blob.arrayBuffer();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsArrayBuffer(blob);
  });
}

/**
 * The base64 MD5 of a Blob/File (what S3's Content-MD5 header carries), hashed incrementally in
 * `chunkSize` slices so memory stays flat for large files. `onProgress(hashedBytes, totalBytes)`.
 */
export async function md5Base64(blob, { chunkSize = HASH_CHUNK, signal, onProgress } = {}) {
  const spark = new SparkMD5.ArrayBuffer();
  try {
    for (let offset = 0; offset < blob.size; offset += chunkSize) {
      if (signal?.aborted) throw new AbortedError();
      spark.append(await readSlice(blob.slice(offset, offset + chunkSize)));
      onProgress?.(Math.min(offset + chunkSize, blob.size), blob.size);
    }
    return btoa(spark.end(true)); // end(true): the raw 16-byte digest as a binary string
  } finally {
    spark.destroy();
  }
}

/**
 * Refuse a file before presigning it, with the limits of GET /config.
 * Throws UnsupportedTypeError, TooLargeError or a BrokerError("validation_error").
 */
export function checkFile(file, config, { filename = file.name, filetype = file.type } = {}) {
  const type = normaliseType(filetype);
  const name = filename || "The file";
  const allowed = (config && config.allowed_types) || [];
  if (allowed.length && !allowed.includes(type)) {
    const names = allowed.map((t) => t.replace(/^image\//, "").toUpperCase()).join(", ");
    throw new UnsupportedTypeError(
      `${name}: ${type || "this file type"} is not allowed (allowed: ${names}).`,
    );
  }
  const max = config && config.max_upload_bytes;
  if (max && file.size > max) {
    throw new TooLargeError(`${name} is ${formatBytes(file.size)}; the limit is ${formatBytes(max)}.`);
  }
  if (file.size === 0) {
    throw new BrokerError(`${name} is empty.`, { code: "validation_error", status: 400 });
  }
}

// ---- the PUT to the bucket ------------------------------------------------------------------------

/** What the bucket's XML error says: {code, message}. */
function bucketErrorBody(text) {
  const pick = (tag) => {
    const match = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(text || "");
    return match ? match[1] : "";
  };
  return { code: pick("Code"), message: pick("Message") };
}

function bucketError(status, text, expiresAt) {
  const { code, message } = bucketErrorBody(text);
  const expired =
    /expired/i.test(message) ||
    ["ExpiredToken", "RequestExpired", "TokenRefreshRequired"].includes(code) ||
    (status === 403 && expiresAt && Date.now() >= expiresAt);
  if (status === 403 && expired) return new UrlExpiredError(undefined, { details: { bucket: code } });
  const detail = message || code || `HTTP ${status}`;
  if (code === "BadDigest" || code === "InvalidDigest") {
    return new BrokerError(`The bucket refused the file: its checksum does not match (${detail}).`, {
      code: "checksum_mismatch",
      status,
      details: { bucket: code },
    });
  }
  if (status === 413 || code === "EntityTooLarge") {
    return new TooLargeError(`The bucket refused the file as too large (${detail}).`, { status });
  }
  const retriable = status >= 500 || status === 429;
  const error = new BrokerError(`The bucket refused the upload (${detail}).`, {
    code: retriable ? "bucket_unavailable" : "upload_rejected",
    status,
    details: { bucket: code },
  });
  error.retriable = retriable;
  return error;
}

function putOnce(presigned, file, { onProgress, signal, timeout }) {
  const expiresAt = Date.parse(presigned.expires_at) || 0;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError());
    const xhr = new XMLHttpRequest();
    xhr.open(presigned.method || "PUT", presigned.url);
    // Exactly the headers the broker signed; the browser adds Content-Length from the body.
    for (const [name, value] of Object.entries(presigned.headers || {})) {
      xhr.setRequestHeader(name, value);
    }
    if (timeout) xhr.timeout = timeout;
    const onAbort = () => xhr.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = (fn, value) => {
      signal?.removeEventListener("abort", onAbort);
      fn(value);
    };
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress?.(event.loaded, event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress?.(file.size, file.size);
        done(resolve, { status: xhr.status, etag: xhr.getResponseHeader("ETag") });
      } else {
        done(reject, bucketError(xhr.status, xhr.responseText, expiresAt));
      }
    };
    const networkError = (what) => {
      const error = new NetworkError(
        `The upload to the bucket failed (${what}): check the connection, or the bucket's CORS ` +
          "settings for this origin.",
      );
      error.retriable = true;
      done(reject, error);
    };
    xhr.onerror = () => networkError("network error");
    xhr.ontimeout = () => networkError("timed out");
    xhr.onabort = () => done(reject, new AbortedError());
    xhr.send(file);
  });
}

/** PUT the file, retrying network failures and 5xx a couple of times with backoff. */
async function putToBucket(
  presigned,
  file,
  { onProgress, signal, retries = PUT_RETRIES, backoff = PUT_BACKOFF_MS, timeout = 0 },
) {
  const expiresAt = Date.parse(presigned.expires_at) || 0;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await putOnce(presigned, file, { onProgress, signal, timeout });
    } catch (error) {
      // The URL writes once (If-None-Match: *): a retry answered 412 means an earlier attempt
      // stored the object and only its answer was lost. Confirm verifies the object anyway.
      if (attempt > 0 && error.status === 412) {
        onProgress?.(file.size, file.size);
        return { status: 412, etag: null };
      }
      if (!error.retriable || attempt >= retries) throw error;
      const delay = backoff * 3 ** attempt * (0.75 + Math.random() * 0.5);
      if (expiresAt && Date.now() + delay >= expiresAt) throw new UrlExpiredError();
      await sleep(delay, signal);
      onProgress?.(0, file.size);
    }
  }
}

// ---- the client -------------------------------------------------------------------------------

/**
 * A client of one broker with one identity. Options: `token` (a JWT string) or `getToken`
 * (a function returning one, possibly async, called before every request), `baseUrl` (defaults
 * to the broker this module was loaded from).
 */
export class BrokerClient {
  constructor({ token = null, getToken = null, baseUrl = DEFAULT_BASE_URL, fetch: fetchImpl } = {}) {
    this.token = token;
    this.getToken = getToken;
    this.baseUrl = String(baseUrl ?? "").replace(/\/+$/, "");
    this.fetch = fetchImpl || ((...args) => globalThis.fetch(...args));
    this._urls = new Map(); // id → {value: {url, expires_at}, refreshAt}
    this._pending = new Map(); // id → promise of a batch's {id: {url, expires_at}}
    this._config = null;
    this._generation = 0; // bumped by clearCache(): answers to older requests are not cached
  }

  /** Change the identity or the broker; forgets every cached URL and the cached config. */
  configure({ token, getToken, baseUrl } = {}) {
    if (token !== undefined) this.token = token;
    if (getToken !== undefined) this.getToken = getToken;
    if (baseUrl !== undefined) this.baseUrl = String(baseUrl ?? "").replace(/\/+$/, "");
    this.clearCache();
    return this;
  }

  /** Forget cached signed URLs and the cached config. */
  clearCache() {
    this._urls.clear();
    this._pending.clear();
    this._config = null;
    this._generation += 1;
  }

  async _authorization() {
    const token = this.getToken ? await this.getToken() : this.token;
    return token ? `Bearer ${token}` : null;
  }

  /** Call the API: JSON in and out; throws BrokerError (and subclasses) on any failure. */
  async request(method, path, { query, body, signal } = {}) {
    const base = this.baseUrl || globalThis.location?.origin || "";
    const url = new URL(base + path, globalThis.location?.href);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const headers = { Accept: "application/json" };
    const authorization = await this._authorization();
    if (authorization) headers.Authorization = authorization;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await this.fetch(url.href, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
        credentials: "omit", // the token travels in the header, never in cookies
        referrerPolicy: "no-referrer",
      });
    } catch (error) {
      if (error && error.name === "AbortError") throw new AbortedError("The request was cancelled.");
      throw new NetworkError("Network error: the image broker could not be reached.", { cause: error });
    }
    if (response.status === 204) return null;
    let data;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) throw apiError(response.status, data, response.headers);
    return data;
  }

  /** GET /config (cached; `{refresh: true}` asks again). */
  async getConfig({ refresh = false } = {}) {
    if (!this._config || refresh) {
      const pending = this.request("GET", "/config");
      this._config = pending;
      pending.catch(() => {
        if (this._config === pending) this._config = null;
      });
    }
    return this._config;
  }

  /** GET /images → {images, next_cursor}. Params: limit, cursor, kind, q, sort, owner. */
  listImages(params = {}, { signal } = {}) {
    const { limit, cursor, kind, q, sort, owner } = params;
    return this.request("GET", "/images", { query: { limit, cursor, kind, q, sort, owner }, signal });
  }

  /** GET /images/<id> → the image. */
  async getImage(id) {
    return (await this.request("GET", `/images/${encodeURIComponent(id)}`)).image;
  }

  /** PATCH /images/<id> with {caption, kind, tags, is_primary} → the image. */
  async patchImage(id, changes) {
    return (await this.request("PATCH", `/images/${encodeURIComponent(id)}`, { body: changes })).image;
  }

  /** DELETE /images/<id>. */
  async deleteImage(id) {
    await this.request("DELETE", `/images/${encodeURIComponent(id)}`);
    this.invalidate(id);
  }

  /** POST /images/<id>/usage → the image with usage_count + 1. */
  async recordUsage(id) {
    return (await this.request("POST", `/images/${encodeURIComponent(id)}/usage`)).image;
  }

  /** Forget the cached signed URL of one image (after a delete, or when an <img> fails to load). */
  invalidate(id) {
    this._urls.delete(id);
  }

  _remember(id, value, fetchedAt) {
    const expiresAt = Date.parse(value.expires_at);
    if (!Number.isFinite(expiresAt)) return;
    // Refresh a bit before expiry: 20% of the lifetime, between 5 s and 60 s.
    const margin = Math.min(60_000, Math.max(5_000, (expiresAt - fetchedAt) * 0.2));
    this._urls.set(id, { value, refreshAt: expiresAt - margin });
  }

  /**
   * Signed GET URLs for many images: `{id: {url, expires_at}}`, ids the caller cannot see absent.
   * Cached until shortly before they expire; the rest come from POST /images/signed-urls in
   * batches of at most 100 ids. Concurrent calls for the same ids share one request.
   */
  async signedUrls(ids, { signal } = {}) {
    const result = {};
    const waits = new Map(); // id → promise
    const missing = [];
    const now = Date.now();
    for (const id of new Set(ids)) {
      const cached = this._urls.get(id);
      if (cached && cached.refreshAt > now) result[id] = cached.value;
      else if (this._pending.has(id)) waits.set(id, this._pending.get(id));
      else missing.push(id);
    }
    for (let start = 0; start < missing.length; start += MAX_BATCH) {
      const batch = missing.slice(start, start + MAX_BATCH);
      const fetchedAt = Date.now();
      const generation = this._generation;
      const promise = this.request("POST", "/images/signed-urls", { body: { ids: batch }, signal }).then(
        (body) => {
          const urls = (body && body.urls) || {};
          if (generation === this._generation) {
            for (const [id, value] of Object.entries(urls)) this._remember(id, value, fetchedAt);
          }
          return urls;
        },
      );
      for (const id of batch) {
        this._pending.set(id, promise);
        waits.set(id, promise);
      }
      promise
        .finally(() => {
          for (const id of batch) if (this._pending.get(id) === promise) this._pending.delete(id);
        })
        .catch(() => {}); // the caller below sees the error
    }
    const answers = new Map();
    await Promise.all([...new Set(waits.values())].map(async (p) => answers.set(p, await p)));
    for (const [id, promise] of waits) {
      const value = answers.get(promise)[id];
      if (value) result[id] = value;
    }
    return result;
  }

  /**
   * One signed GET URL: `{url, expires_at}`. With the defaults it goes through the cache and the
   * batch endpoint; with `expiresIn` or `disposition: "attachment"` it asks for a fresh one.
   */
  async signedUrl(id, { expiresIn, disposition } = {}) {
    if (expiresIn !== undefined || (disposition && disposition !== "inline")) {
      return this.request("GET", `/images/${encodeURIComponent(id)}/signed-url`, {
        query: { expires_in: expiresIn, disposition },
      });
    }
    const value = (await this.signedUrls([id]))[id];
    if (!value) throw new BrokerError("No such image.", { code: "not_found", status: 404 });
    return value;
  }

  /**
   * Upload one file: check it against /config, hash it (MD5), presign, PUT it straight to the
   * bucket (retrying network failures and 5xx), confirm. Resolves with the image.
   *
   * Options: kind, caption, onProgress({phase, loaded, total, percent}) where phase is
   * "hashing" | "uploading" | "confirming" | "done" (percent is the PUT's, 0 to 100);
   * signal (AbortSignal); filename / filetype (default: the File's); config (skip GET /config);
   * check (false: skip the client-side checks); retries (PUT retries after the first try,
   * default 2), backoff (ms before the first retry, tripled each time, default 600); timeout (ms).
   */
  async upload(file, options = {}) {
    if (!(file instanceof Blob)) throw new TypeError("upload() needs a File or Blob");
    const { kind, caption, onProgress, signal, retries, backoff, timeout } = options;
    const filename = options.filename || file.name || "image";
    const filetype = normaliseType(options.filetype || file.type);
    const report = (phase, loaded, total) =>
      onProgress?.({
        phase,
        loaded,
        total,
        percent: phase === "hashing" ? 0 : total ? Math.round((loaded / total) * 100) : 100,
      });
    if (options.check !== false) {
      const config = options.config || (await this.getConfig());
      checkFile(file, config, { filename, filetype });
    }
    report("hashing", 0, file.size);
    const contentMd5 = await md5Base64(file, {
      signal,
      onProgress: (loaded, total) => report("hashing", loaded, total),
    });
    const declaration = { filename, filetype, size: file.size, content_md5: contentMd5 };
    if (kind) declaration.kind = kind;
    if (caption) declaration.caption = caption;
    const presigned = await this.request("POST", "/images/presign-upload", { body: declaration, signal });
    report("uploading", 0, file.size);
    await putToBucket(presigned, file, {
      signal,
      retries,
      backoff,
      timeout,
      onProgress: (loaded, total) => report("uploading", loaded, total),
    });
    report("confirming", file.size, file.size);
    const confirm = { key: presigned.key, filename, filetype };
    let image;
    for (let attempt = 0; ; attempt += 1) {
      try {
        // Confirming is idempotent (the same key again answers 200 with the same image).
        image = (await this.request("POST", "/images", { body: confirm, signal })).image;
        break;
      } catch (error) {
        const transient = error instanceof NetworkError || error.status === 503 || error.status === 429;
        if (!transient || attempt >= 2) throw error;
        await sleep((error.retryAfter || 1) * 1000, signal);
      }
    }
    report("done", file.size, file.size);
    return image;
  }
}

// ---- module-level API (one default client) --------------------------------------------------------

/** The client the module-level functions use; `configure()` sets its token and broker. */
export const defaultClient = new BrokerClient();

/** Set the default client's `token` / `getToken` / `baseUrl` (clears its caches). */
export function configure(options) {
  return defaultClient.configure(options);
}

/** The default client, or, when the options name their own token/getToken/baseUrl, a client for them. */
function clientFor(options) {
  if (!options || (options.token === undefined && options.getToken === undefined && options.baseUrl === undefined)) {
    return defaultClient;
  }
  return new BrokerClient({
    token: options.token ?? (options.getToken ? null : defaultClient.token),
    getToken: options.getToken ?? (options.token ? null : defaultClient.getToken),
    baseUrl: options.baseUrl ?? defaultClient.baseUrl,
  });
}

/** See BrokerClient#upload; `token` / `getToken` / `baseUrl` may be given per call. */
export const upload = (file, options = {}) => clientFor(options).upload(file, options);
/** See BrokerClient#signedUrl. */
export const signedUrl = (id, options = {}) => clientFor(options).signedUrl(id, options);
/** See BrokerClient#signedUrls. */
export const signedUrls = (ids, options = {}) => clientFor(options).signedUrls(ids, options);
export const getConfig = (options = {}) => clientFor(options).getConfig(options);
export const listImages = (params = {}, options = {}) => clientFor(options).listImages(params, options);
export const getImage = (id, options = {}) => clientFor(options).getImage(id);
export const patchImage = (id, changes, options = {}) => clientFor(options).patchImage(id, changes);
export const deleteImage = (id, options = {}) => clientFor(options).deleteImage(id);
export const recordUsage = (id, options = {}) => clientFor(options).recordUsage(id);
export const invalidate = (id) => defaultClient.invalidate(id);
