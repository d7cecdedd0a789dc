/**
 * broker.js: the image broker's browser module (an ES module; no build step, no dependencies
 * beyond the one vendored file below). Served at /static/broker.js.
 *
 *   import { configure, upload, signedUrls, srcset } from "/static/broker.js";
 *   configure({ getToken: () => myToken });
 *   const image = await upload(file, { kind: "gallery", onProgress: (p) => bar.value = p.percent });
 *   const { url } = (await signedUrls([image.id], { variant: "thumb" }))[image.id];
 *   img.srcset = await srcset(image, { variants: ["thumb", "medium"] });
 *   const avatar = await upload(file, { kind: "profile", visibility: "public" });
 *   img.src = publicUrl(avatar); // no token needed: fine on any page, in a mail, on another site
 *
 * Variants (resized WebP copies a worker makes, see BROKER_VARIANTS) are signed with
 * `{ variant: "thumb" }`; until one is ready the broker signs the original and says so
 * (`variant: "original"` in the answer), and such an answer is asked again soon.
 *
 * Bytes never pass through the broker: upload() hashes the file here, asks the broker for a
 * presigned PUT, sends the file straight to the bucket with exactly the headers the broker
 * returned (XMLHttpRequest, for real upload progress events), then asks the broker to confirm.
 * Above `multipartThreshold` (16 MiB) it sends the file in parts instead, a few at a time, each
 * part hashed here and signed by the broker for its exact length and MD5; createUpload() gives
 * the same upload as a task that can be paused, resumed and aborted, and the same file picked
 * again after a reload resumes from the parts the bucket already holds.
 *
 *   const task = createUpload(file, { onProgress });
 *   pause.onclick = () => task.pause();  resume.onclick = () => task.resume();
 *   const image = await task.promise;
 *
 * For Uppy (@uppy/aws-s3 6.2+ in signRequest mode), uppyAwsS3Options(uppy) returns the plugin's
 * options: single and multipart uploads go through the broker, every rule kept.
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
const MiB = 1024 * 1024;
/** Files above this size go in parts (the broker's /config publishes the same hint). */
export const MULTIPART_THRESHOLD = 16 * MiB;
const DEFAULT_PART_SIZE = 8 * MiB;
const MIN_PART_SIZE = 5 * MiB; // S3's limits
const MAX_PARTS = 10_000;
const PARALLEL_PARTS = 3;
const PART_RETRIES = 3; // network failures and 5xx per part, after the first attempt
const PART_RESIGNS = 3; // expired part URLs signed again, per part
const URL_MARGIN_MS = 30_000; // a URL with less life than this left is signed again first
const REGISTRY_KEY = "broker.multipart.v1"; // localStorage: unfinished multipart uploads
// A variant asked for but not ready yet was answered with the original: ask again after this.
const PENDING_VARIANT_RECHECK_MS = 5_000;
const ORIGINAL = "original";

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

/**
 * The public link of an image: its `public_url` (absolute, needs no token, redirects to a
 * short-lived signed GET of the image), with `?variant=` when a variant is asked for; null for
 * a private image. Nothing is fetched: the link is what the broker put in the image.
 */
export function publicUrl(image, { variant } = {}) {
  const link = image && typeof image.public_url === "string" ? image.public_url : "";
  if (!link) return null;
  if (!variant) return link;
  const url = new URL(link);
  url.searchParams.set("variant", variant);
  return url.href;
}

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
  { onProgress, signal, retries = PUT_RETRIES, backoff = PUT_BACKOFF_MS, timeout = 0, triedBefore = false },
) {
  const expiresAt = Date.parse(presigned.expires_at) || 0;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await putOnce(presigned, file, { onProgress, signal, timeout });
    } catch (error) {
      // The URL writes once (If-None-Match: *): a retry answered 412 means an earlier attempt
      // (this call's, or one a pause cut short) stored the object and only its answer was
      // lost. Confirm verifies the object anyway.
      if ((attempt > 0 || triedBefore) && error.status === 412) {
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

// ---- multipart: part sizes, the resume registry, pause control ------------------------------------

/**
 * The part size to cut a file of `size` bytes into: `partSize` (default 8 MiB, never under S3's
 * 5 MiB), grown in whole MiB so that 10,000 parts are always enough. The broker's own default is
 * the same rule, and Uppy's chunking agrees with it (it never has to override it).
 */
export function partSizeFor(size, partSize = DEFAULT_PART_SIZE) {
  const fewest = Math.ceil(size / MAX_PARTS);
  return Math.max(partSize, MIN_PART_SIZE, Math.ceil(fewest / MiB) * MiB);
}

/** The hex form of a base64 MD5 (a part's ETag). */
function hexOfBase64(b64) {
  return Array.from(atob(b64), (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

/** An ETag as the broker compares them: no quotes, lower case. */
function plainEtag(etag) {
  return String(etag || "").trim().replace(/^"+|"+$/g, "").toLowerCase();
}

function defaultStorage() {
  try {
    return globalThis.localStorage || null;
  } catch {
    return null; // storage disabled (privacy settings): uploads still work, without resume
  }
}

/**
 * Unfinished multipart uploads by file fingerprint (broker, user, name, size, modification
 * time, type), kept in localStorage so the same file picked again after a reload resumes. It
 * holds upload ids and part sizes, never tokens; an id is useless to anyone else (404).
 */
class UploadRegistry {
  constructor(storage) {
    this.storage = storage;
  }

  _read() {
    try {
      const map = JSON.parse(this.storage?.getItem(REGISTRY_KEY) || "{}");
      return map && typeof map === "object" ? map : {};
    } catch {
      return {};
    }
  }

  _write(map) {
    try {
      if (Object.keys(map).length) this.storage?.setItem(REGISTRY_KEY, JSON.stringify(map));
      else this.storage?.removeItem(REGISTRY_KEY);
    } catch {
      // full or disabled: the upload goes on, it just cannot be resumed after a reload
    }
  }

  /** The live record of `fingerprint`, or null (expired records are dropped on the way). */
  get(fingerprint) {
    const map = this._read();
    const now = Date.now();
    let changed = false;
    for (const [key, record] of Object.entries(map)) {
      if (!(Date.parse(record && record.expires_at) > now)) {
        delete map[key];
        changed = true;
      }
    }
    if (changed) this._write(map);
    return map[fingerprint] || null;
  }

  set(fingerprint, record) {
    const map = this._read();
    map[fingerprint] = record;
    this._write(map);
  }

  delete(fingerprint) {
    const map = this._read();
    if (fingerprint in map) {
      delete map[fingerprint];
      this._write(map);
    }
  }
}

/** Pause, resume and abort of one upload: the signal of the work in flight, and a gate. */
class Control {
  constructor(external) {
    this.state = "running"; // "running" | "paused" | "aborted"
    this._controller = new AbortController();
    this._resumed = null;
    if (external?.aborted) this.abort();
    else external?.addEventListener("abort", () => this.abort(), { once: true });
  }

  /** Aborted when the upload is paused or aborted: what is in flight stops. */
  get signal() {
    return this._controller.signal;
  }

  pause() {
    if (this.state !== "running") return false;
    this.state = "paused";
    let resolve;
    this._resumed = { promise: new Promise((r) => (resolve = r)), resolve };
    this._controller.abort();
    return true;
  }

  resume() {
    if (this.state !== "paused") return false;
    this.state = "running";
    this._controller = new AbortController();
    this._resumed.resolve();
    return true;
  }

  abort() {
    if (this.state === "aborted") return false;
    this.state = "aborted";
    this._controller.abort();
    this._resumed?.resolve();
    return true;
  }

  /** Wait while paused; AbortedError once aborted. */
  async ready() {
    while (this.state === "paused") await this._resumed.promise;
    if (this.state === "aborted") throw new AbortedError();
  }

  /** Run `step(signal)` to its end, starting it again after each pause that cut it short. */
  async run(step) {
    for (;;) {
      await this.ready();
      try {
        return await step(this.signal);
      } catch (error) {
        if (error instanceof AbortedError && this.state === "paused") continue;
        throw error;
      }
    }
  }
}

/** Retry a broker call that failed for a passing reason (network, 429, 503): it is idempotent. */
async function retryTransient(call, signal, attempts = 3) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      const transient = error instanceof NetworkError || error.status === 503 || error.status === 429;
      if (!transient || attempt >= attempts) throw error;
      await sleep((error.retryAfter || 1) * 1000, signal);
    }
  }
}

/**
 * One upload of one file, single or multipart: `promise` resolves with the recorded image;
 * `pause()`, `resume()` and `abort()` control it (abort deletes a multipart upload; a paused one
 * can also be left, and resumed after a reload by uploading the same file again).
 */
export class UploadTask {
  constructor(client, file, options = {}) {
    if (!(file instanceof Blob)) throw new TypeError("upload() needs a File or Blob");
    this.client = client;
    this.file = file;
    this.options = options;
    this.filename = options.filename || file.name || "image";
    this.filetype = normaliseType(options.filetype || file.type);
    this.multipart = file.size > (options.multipartThreshold ?? MULTIPART_THRESHOLD);
    this.uploadId = null; // the broker's id of a multipart upload, once created or resumed
    this.resumedParts = 0; // parts the bucket already held when the upload was resumed
    this._control = new Control(options.signal);
    this._shown = 0; // bytes last reported: the figure never goes back
    this._phase = "hashing";
    this.promise = this._run();
    this.promise.catch(() => {}); // the caller handles it; no unhandled-rejection noise
  }

  /** "running", "paused" or "aborted". */
  get state() {
    return this._control.state;
  }

  /** Stop sending (what is in flight is dropped); `resume()` goes on from there. */
  pause() {
    if (this._control.pause()) this._report("paused", this._shown);
  }

  /** Go on after `pause()`. */
  resume() {
    if (this._control.resume()) this._report(this._phase, this._shown);
  }

  /** Give up: the promise rejects with AbortedError, and a multipart upload is deleted. */
  abort() {
    this._control.abort();
  }

  _report(phase, loaded, extra = {}) {
    // While paused, what the cut-short requests report is not news.
    if (this._control.state === "paused" && phase !== "paused") return;
    if (phase !== "paused") this._phase = phase;
    const total = this.file.size;
    // Hashing has a figure of its own; bytes sent never go back (a part sent again, a pause).
    if (phase !== "hashing") this._shown = Math.max(this._shown, Math.min(loaded, total));
    const shown = phase === "hashing" ? loaded : this._shown;
    this.options.onProgress?.({
      phase,
      loaded: shown,
      total,
      percent: phase === "hashing" ? 0 : total ? Math.round((shown / total) * 100) : 100,
      multipart: this.multipart,
      ...extra,
    });
  }

  _declaration() {
    const { kind, caption, visibility } = this.options;
    const declaration = { filename: this.filename, filetype: this.filetype, size: this.file.size };
    if (kind) declaration.kind = kind;
    if (caption) declaration.caption = caption;
    if (visibility) declaration.visibility = visibility;
    return declaration;
  }

  async _run() {
    if (this.options.check !== false) {
      const config = this.options.config || (await this.client.getConfig());
      checkFile(this.file, config, { filename: this.filename, filetype: this.filetype });
    }
    return this.multipart ? this._multipart() : this._single();
  }

  // -- one PUT -----------------------------------------------------------------------------------

  async _single() {
    const { client, file, options } = this;
    const control = this._control;
    this._report("hashing", 0);
    const contentMd5 = await control.run((signal) =>
      md5Base64(file, { signal, onProgress: (loaded) => this._report("hashing", loaded) }),
    );
    const declaration = { ...this._declaration(), content_md5: contentMd5 };
    const presign = (signal) => client.request("POST", "/images/presign-upload", { body: declaration, signal });
    let grant = await control.run(presign);
    let tried = false;
    this._report("uploading", 0);
    await control.run(async (signal) => {
      // Paused past the URL's life: a fresh grant (the old upload is swept in due course).
      if (Date.parse(grant.expires_at) - Date.now() < 5_000) {
        grant = await presign(signal);
        tried = false;
      }
      const triedBefore = tried;
      tried = true;
      await putToBucket(grant, file, {
        signal,
        retries: options.retries,
        backoff: options.backoff,
        timeout: options.timeout,
        triedBefore,
        onProgress: (loaded) => this._report("uploading", loaded),
      });
    });
    this._report("confirming", file.size);
    const confirm = { key: grant.key, filename: this.filename, filetype: this.filetype };
    const image = await control.run((signal) =>
      // Confirming is idempotent (the same key again answers 200 with the same image).
      retryTransient(() => client.request("POST", "/images", { body: confirm, signal }).then((b) => b.image), signal),
    );
    this._report("done", file.size);
    return image;
  }

  // -- in parts ----------------------------------------------------------------------------------

  async _fingerprint() {
    const { client, file } = this;
    const token = client.getToken ? await client.getToken() : client.token;
    const sub = (decodeTokenClaims(token) || {}).sub || "";
    return [client.baseUrl, sub, this.filename, file.size, file.lastModified || 0, this.filetype].join("|");
  }

  async _multipart() {
    const { client, file, options } = this;
    const control = this._control;
    const registry = new UploadRegistry(options.storage === undefined ? defaultStorage() : options.storage);
    const fingerprint = await this._fingerprint();
    const done = new Map(); // part number → ETag (hex MD5)
    let upload = registry.get(fingerprint);
    const partLength = (n) => Math.min(upload.part_size, file.size - (n - 1) * upload.part_size);
    if (upload) {
      // Resume: only parts the bucket holds whole count; a part cut short is sent again.
      try {
        const listed = await control.run((signal) =>
          client.request("GET", `/images/multipart/${encodeURIComponent(upload.upload_id)}/parts`, { signal }),
        );
        for (const part of listed.parts) {
          if (part.part_number <= upload.part_count && part.size === partLength(part.part_number)) {
            done.set(part.part_number, plainEtag(part.etag));
          }
        }
        this.resumedParts = done.size;
      } catch (error) {
        if (error.status !== 404 && error.status !== 409) throw error;
        registry.delete(fingerprint); // finished, aborted or expired: start afresh
        upload = null;
      }
    }
    if (!upload) {
      const body = { ...this._declaration(), part_size: partSizeFor(file.size, options.partSize) };
      const created = await control.run((signal) =>
        client.request("POST", "/images/multipart", { body, signal }),
      );
      upload = {
        upload_id: created.upload_id,
        key: created.key,
        part_size: created.part_size,
        part_count: created.part_count,
        expires_at: created.expires_at,
      };
      registry.set(fingerprint, upload);
    }
    this.uploadId = upload.upload_id;
    const path = `/images/multipart/${encodeURIComponent(upload.upload_id)}`;
    try {
      const inFlight = new Map(); // part number → bytes sent so far
      const progress = () => {
        let loaded = 0;
        for (const n of done.keys()) loaded += partLength(n);
        for (const sent of inFlight.values()) loaded += sent;
        this._report("uploading", loaded, { parts: { done: done.size, total: upload.part_count } });
      };
      progress();
      const queue = [];
      for (let n = 1; n <= upload.part_count; n += 1) if (!done.has(n)) queue.push(n);
      const worker = async () => {
        while (queue.length) {
          const n = queue.shift();
          const blob = file.slice((n - 1) * upload.part_size, (n - 1) * upload.part_size + partLength(n));
          try {
            const etag = await this._sendPart(path, n, blob, (sent) => {
              inFlight.set(n, sent);
              progress();
            });
            done.set(n, etag);
          } catch (error) {
            queue.length = 0; // the other workers finish their part and stop
            throw error;
          } finally {
            inFlight.delete(n);
          }
          progress();
        }
      };
      const parallel = Math.max(1, Math.min(options.parallel || PARALLEL_PARTS, queue.length));
      await Promise.all(Array.from({ length: parallel }, worker));

      this._report("confirming", file.size);
      const parts = [...done.entries()].sort((a, b) => a[0] - b[0]).map(([n, etag]) => ({ part_number: n, etag }));
      const image = await control.run((signal) =>
        // Idempotent: completing a finished upload again answers 200 with the same image.
        retryTransient(() => client.request("POST", `${path}/complete`, { body: { parts }, signal }).then((b) => b.image), signal),
      );
      registry.delete(fingerprint);
      this._report("done", file.size);
      return image;
    } catch (error) {
      if (control.state === "aborted") {
        registry.delete(fingerprint);
        await client.request("DELETE", path).catch(() => {}); // best effort: the sweeper backs it up
      } else if (error.status === 409 || error.status === 422 || error.status === 404) {
        registry.delete(fingerprint); // the upload is over: another try starts afresh
      }
      throw error;
    }
  }

  /** Hash, sign and PUT one part (retrying what can be retried); its ETag. */
  async _sendPart(path, n, blob, onSent) {
    const { client, options } = this;
    let contentMd5 = null;
    let grant = null;
    let failures = 0;
    let resigns = 0;
    let rehashed = false;
    return this._control.run(async (signal) => {
      for (;;) {
        try {
          contentMd5 ??= await md5Base64(blob, { signal });
          if (!grant || Date.parse(grant.expires_at) - Date.now() < URL_MARGIN_MS) {
            const body = { parts: [{ part_number: n, content_md5: contentMd5 }] };
            grant = (await client.request("POST", `${path}/parts`, { body, signal })).parts[0];
          }
          const put = { ...grant, method: "PUT" };
          const { etag } = await putOnce(put, blob, { signal, timeout: options.timeout, onProgress: onSent });
          const own = hexOfBase64(contentMd5);
          if (etag && plainEtag(etag) !== own) {
            throw new BrokerError(`The bucket stored other bytes for part ${n}.`, { code: "checksum_mismatch" });
          }
          return own;
        } catch (error) {
          onSent(0);
          if (error instanceof UrlExpiredError && resigns < PART_RESIGNS) {
            resigns += 1; // a part that took long, or a pause past the URL's life: sign it again
            grant = null;
          } else if (error.code === "checksum_mismatch" && !rehashed) {
            rehashed = true; // the file changed under us? hash it once more, then give up
            contentMd5 = null;
            grant = null;
          } else if (error.retriable && failures < (options.retries ?? PART_RETRIES)) {
            failures += 1;
            const backoff = options.backoff ?? PUT_BACKOFF_MS;
            await sleep(backoff * 3 ** (failures - 1) * (0.75 + Math.random() * 0.5), signal);
          } else {
            throw error;
          }
        }
      }
    });
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
    this._urls = new Map(); // "<variant>|<id>" → {value: {url, expires_at, variant}, refreshAt}
    this._pending = new Map(); // "<variant>|<id>" → promise of a batch's {id: {url, …}}
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

  /**
   * GET /images → {images, next_cursor}. Params: limit, cursor, kind, q, sort, owner (someone
   * else's name: their public images; all of them for an admin or a reader); `sign: true` adds
   * each image's signed `url`, `expires_at` and `variant` (of `variant` where it is ready).
   */
  listImages(params = {}, { signal } = {}) {
    const { limit, cursor, kind, q, sort, owner, variant } = params;
    const sign = params.sign ? 1 : undefined;
    return this.request("GET", "/images", { query: { limit, cursor, kind, q, sort, owner, sign, variant }, signal });
  }

  /** GET /images/<id> → the image. */
  async getImage(id) {
    return (await this.request("GET", `/images/${encodeURIComponent(id)}`)).image;
  }

  /** PATCH /images/<id> with {caption, kind, tags, is_primary, visibility} → the image. */
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

  /** Forget the cached signed URLs of one image, every variant's (after a delete, or when an
   * <img> fails to load). */
  invalidate(id) {
    for (const key of [...this._urls.keys()]) {
      if (key.slice(key.indexOf("|") + 1) === id) this._urls.delete(key);
    }
  }

  _remember(key, value, fetchedAt, variant) {
    const expiresAt = Date.parse(value.expires_at);
    if (!Number.isFinite(expiresAt)) return;
    // Refresh a bit before expiry: 20% of the lifetime, between 5 s and 60 s.
    const margin = Math.min(60_000, Math.max(5_000, (expiresAt - fetchedAt) * 0.2));
    let refreshAt = expiresAt - margin;
    // The original stood in for a variant not made yet: the variant may be ready soon.
    if (variant && variant !== ORIGINAL && value.variant === ORIGINAL) {
      refreshAt = Math.min(refreshAt, fetchedAt + PENDING_VARIANT_RECHECK_MS);
    }
    this._urls.set(key, { value, refreshAt });
  }

  /**
   * Signed GET URLs for many images: `{id: {url, expires_at, variant}}`, ids the caller cannot
   * see absent. With `variant` ("thumb", …) each image's variant is signed where it is ready,
   * its original meanwhile (the answer's `variant` says which). Cached until shortly before
   * they expire; the rest come from POST /images/signed-urls in batches of at most 100 ids.
   * Concurrent calls for the same ids share one request.
   */
  async signedUrls(ids, { signal, variant } = {}) {
    const result = {};
    const waits = new Map(); // id → promise
    const missing = [];
    const now = Date.now();
    const keyOf = (id) => `${variant || ""}|${id}`;
    for (const id of new Set(ids)) {
      const cached = this._urls.get(keyOf(id));
      if (cached && cached.refreshAt > now) result[id] = cached.value;
      else if (this._pending.has(keyOf(id))) waits.set(id, this._pending.get(keyOf(id)));
      else missing.push(id);
    }
    for (let start = 0; start < missing.length; start += MAX_BATCH) {
      const batch = missing.slice(start, start + MAX_BATCH);
      const fetchedAt = Date.now();
      const generation = this._generation;
      const body = variant ? { ids: batch, variant } : { ids: batch };
      const promise = this.request("POST", "/images/signed-urls", { body, signal }).then((answer) => {
        const urls = (answer && answer.urls) || {};
        if (generation === this._generation) {
          for (const [id, value] of Object.entries(urls)) this._remember(keyOf(id), value, fetchedAt, variant);
        }
        return urls;
      });
      for (const id of batch) {
        this._pending.set(keyOf(id), promise);
        waits.set(id, promise);
      }
      promise
        .finally(() => {
          for (const id of batch) if (this._pending.get(keyOf(id)) === promise) this._pending.delete(keyOf(id));
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
   * One signed GET URL: `{url, expires_at, variant}`, of the `variant` when given and ready (else
   * of the original, as the answer's `variant` says). With the defaults it goes through the cache
   * and the batch endpoint; with `expiresIn` or `disposition: "attachment"` it asks for a fresh one.
   */
  async signedUrl(id, { expiresIn, disposition, variant } = {}) {
    if (expiresIn !== undefined || (disposition && disposition !== "inline")) {
      return this.request("GET", `/images/${encodeURIComponent(id)}/signed-url`, {
        query: { expires_in: expiresIn, disposition, variant },
      });
    }
    const value = (await this.signedUrls([id], { variant }))[id];
    if (!value) throw new BrokerError("No such image.", { code: "not_found", status: 404 });
    return value;
  }

  /**
   * A `srcset` for an <img> of `image` (as the API returns it): each ready variant among
   * `variants` (default: all of the image's) at its width, e.g. "https://…thumb… 320w,
   * https://…medium… 1280w", plus the original at its width when `original` is true. While no
   * variant is ready it is the original alone, so the picture shows meanwhile. Pair it with a
   * `sizes` attribute that says how wide the picture is drawn.
   */
  async srcset(image, options = {}) {
    return (await this.srcsets([image], options))[image.id];
  }

  /**
   * `srcset`s for many images, `{id: srcset}`, signed with one batch call per variant (and one
   * for the originals that are needed), as a grid wants them.
   */
  async srcsets(images, { variants, original = false, signal } = {}) {
    const candidates = new Map(images.map((image) => [image.id, []])); // id → [[url, width]]
    const names = variants || [...new Set(images.flatMap((image) => Object.keys(image.variants || {})))];
    for (const name of names) {
      const ready = images.filter((image) => image.variants?.[name]?.state === "ready");
      if (!ready.length) continue;
      const urls = await this.signedUrls(
        ready.map((image) => image.id),
        { variant: name, signal },
      );
      for (const image of ready) {
        const signed = urls[image.id];
        // Signed as the original after all (this copy of the record is older): leave it out.
        if (signed?.variant === name) candidates.get(image.id).push([signed.url, image.variants[name].width]);
      }
    }
    const needOriginal = images.filter((image) => original || !candidates.get(image.id).length);
    if (needOriginal.length) {
      const urls = await this.signedUrls(
        needOriginal.map((image) => image.id),
        { signal },
      );
      for (const image of needOriginal) {
        if (urls[image.id]) candidates.get(image.id).push([urls[image.id].url, image.width]);
      }
    }
    const result = {};
    for (const [id, list] of candidates) {
      const byWidth = new Map(); // one candidate per width: browsers refuse duplicates
      for (const [url, width] of list) {
        if (Number.isFinite(width) && width > 0 && !byWidth.has(width)) byWidth.set(width, url);
      }
      result[id] = [...byWidth]
        .sort(([a], [b]) => a - b)
        .map(([width, url]) => `${url} ${width}w`)
        .join(", ");
    }
    return result;
  }

  /**
   * Upload one file; resolves with the image. Up to `multipartThreshold` bytes (default 16 MiB):
   * check it against /config, hash it (MD5), presign, PUT it straight to the bucket (retrying
   * network failures and 5xx), confirm. Above it: in parts (see createUpload).
   *
   * Options: kind, caption, visibility ("private" or "public"; unset: the broker's default for
   * the kind), onProgress({phase, loaded, total, percent, multipart, parts}) where
   * phase is "hashing" | "uploading" | "paused" | "confirming" | "done" (percent is of the bytes
   * sent, and never goes back; `parts` is {done, total} in parts); signal (AbortSignal);
   * filename / filetype (default: the File's); config (skip GET /config); check (false: skip
   * the client-side checks); retries (PUT retries after the first try, default 2, per part 3),
   * backoff (ms before the first retry, tripled each time, default 600); timeout (ms);
   * multipartThreshold; partSize (default 8 MiB); parallel (parts at once, default 3);
   * storage (where unfinished multipart uploads are remembered; default localStorage, null: none).
   */
  upload(file, options = {}) {
    return this.createUpload(file, options).promise;
  }

  /** The same upload as a task: `{promise, pause(), resume(), abort(), state, uploadId}`. */
  createUpload(file, options = {}) {
    return new UploadTask(this, file, options);
  }
}

// ---- Uppy: @uppy/aws-s3 (6.2+) in signRequest mode, driven through the broker -------------------

/** XML text with & < > " ' escaped. */
function xmlText(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * An S3 XML answer as a data: URL. In signRequest mode the plugin sends create, list, complete
 * and abort to whatever URL the signer returns and reads S3's XML back; the broker does those
 * steps itself (JSON, with its own checks), so the signer calls it and hands the plugin the
 * answer it expects. A data: URL stays in the page (the page's CSP needs `connect-src data:`).
 */
function xmlDataUrl(root, fields = {}, parts = []) {
  const body =
    Object.entries(fields).map(([name, value]) => `<${name}>${xmlText(value)}</${name}>`).join("") +
    parts
      .map((p) => `<Part><PartNumber>${p.part_number}</PartNumber><ETag>${xmlText(p.etag)}</ETag><Size>${p.size ?? 0}</Size></Part>`)
      .join("");
  return `data:application/xml,${encodeURIComponent(`<?xml version="1.0" encoding="UTF-8"?><${root}>${body}</${root}>`)}`;
}

/**
 * Uppy's file types and size limit from the broker's /config, so a file the broker would refuse
 * is refused when it is added.
 */
export async function applyBrokerRestrictions(uppy, { client = defaultClient } = {}) {
  const config = await client.getConfig();
  const restrictions = uppy.getState().restrictions || uppy.opts.restrictions || {};
  uppy.setOptions({
    restrictions: { ...restrictions, allowedFileTypes: config.allowed_types, maxFileSize: config.max_upload_bytes },
  });
  return config;
}

/**
 * The options of `@uppy/aws-s3` (6.2 or later, signRequest mode) that upload through the broker:
 *
 *   uppy.use(AwsS3, uppyAwsS3Options(uppy, { kind: "gallery" }));
 *   uppy.on("broker:image", (file, image) => show(image));
 *
 * Files up to `multipartThreshold` go in one PUT (presigned with the file's MD5, then confirmed
 * once Uppy reports it sent); larger ones in parts, each hashed here and signed by the broker
 * for its length and MD5, then completed by the broker, which verifies and records the image.
 * Every file gets a "broker:image" event with the recorded image (also in
 * `file.response.body.image`), or an "upload-error" with the broker's reason. A multipart upload
 * cut short (a reload, a closed tab) resumes when the same file is added again.
 *
 * Options: client (a BrokerClient; default: the module's), kind, caption, visibility (each also
 * read from the file's meta), multipartThreshold, partSize, limit (files at once, default 3), storage.
 * The page's Content-Security-Policy needs `connect-src data:` for the plugin's S3 answers.
 */
export function uppyAwsS3Options(uppy, options = {}) {
  const { client = defaultClient, multipartThreshold = MULTIPART_THRESHOLD, partSize, limit = 3 } = options;
  const registry = new UploadRegistry(options.storage === undefined ? defaultStorage() : options.storage);
  const entries = new Map(); // Uppy file id → what the broker granted for it
  const fileIdOfKey = new Map(); // broker key → Uppy file id
  const entryOf = (id) => {
    if (!entries.has(id)) entries.set(id, { signedParts: new Map(), etags: new Map() });
    return entries.get(id);
  };
  const fileFor = (request) => {
    const id = fileIdOfKey.get(request.key) ?? request.key; // the first request proposes file.id
    const file = uppy.getFile(id);
    if (!file) throw new BrokerError("This file is no longer in the upload list.", { code: "aborted" });
    return file;
  };
  const declaration = (file) => {
    const body = { filename: file.meta?.name || file.name || "image", filetype: file.type, size: file.size };
    const kind = file.meta?.kind || options.kind;
    const caption = file.meta?.caption || options.caption;
    const visibility = file.meta?.visibility || options.visibility;
    if (kind) body.kind = kind;
    if (caption) body.caption = caption;
    if (visibility) body.visibility = visibility;
    return body;
  };
  const fingerprint = async (file) => {
    const token = client.getToken ? await client.getToken() : client.token;
    const sub = (decodeTokenClaims(token) || {}).sub || "";
    const modified = file.data?.lastModified || 0;
    return [client.baseUrl, sub, declaration(file).filename, file.size, modified, normaliseType(file.type)].join("|");
  };
  const uploadPath = (entry) => `/images/multipart/${encodeURIComponent(entry.upload.upload_id)}`;
  const chunkOf = (file, entry, n) => {
    const start = (n - 1) * entry.upload.part_size;
    return file.data.slice(start, Math.min(start + entry.upload.part_size, file.size));
  };
  const forget = (entry) => {
    if (entry.fingerprint) registry.delete(entry.fingerprint);
  };

  async function single(file, entry) {
    // A paused or retried file asks again: its grant, while valid, is reused (a new one would
    // hold the quota twice; if the first PUT landed, its 412 is taken as landed).
    if (!entry.grant || Date.parse(entry.grant.expires_at) - Date.now() < URL_MARGIN_MS) {
      const body = { ...declaration(file), content_md5: await md5Base64(file.data) };
      entry.grant = await client.request("POST", "/images/presign-upload", { body });
      entry.kind = "single";
      fileIdOfKey.set(entry.grant.key, file.id);
    }
    return { url: entry.grant.url, key: entry.grant.key, headers: entry.grant.headers };
  }

  async function create(file, entry) {
    const body = { ...declaration(file), part_size: partSizeFor(file.size, partSize) };
    const created = await client.request("POST", "/images/multipart", { body });
    if (created.part_size !== body.part_size) {
      await client.request("DELETE", `/images/multipart/${encodeURIComponent(created.upload_id)}`).catch(() => {});
      throw new BrokerError("The broker cut the file into other parts than Uppy would.", { code: "part_size" });
    }
    entry.kind = "multipart";
    entry.upload = created;
    entry.fingerprint = await fingerprint(file);
    registry.set(entry.fingerprint, {
      upload_id: created.upload_id,
      key: created.key,
      part_size: created.part_size,
      part_count: created.part_count,
      expires_at: created.expires_at,
    });
    fileIdOfKey.set(created.key, file.id);
    return { url: xmlDataUrl("InitiateMultipartUploadResult", { Key: created.key, UploadId: created.upload_id }), key: created.key };
  }

  async function signPart(file, entry, n) {
    const cached = entry.signedParts.get(n);
    if (cached && Date.parse(cached.expires_at) - Date.now() > URL_MARGIN_MS) return cached;
    // The plugin slices the file as getChunkSize says (the part size the broker echoed), and
    // never hands the bytes to the signer: the same range is hashed here.
    const contentMd5 = await md5Base64(chunkOf(file, entry, n));
    const body = { parts: [{ part_number: n, content_md5: contentMd5 }] };
    const [signed] = (await client.request("POST", `${uploadPath(entry)}/parts`, { body })).parts;
    entry.signedParts.set(n, signed);
    entry.etags.set(n, hexOfBase64(contentMd5));
    return signed;
  }

  async function complete(file, entry) {
    const count = entry.upload.part_count;
    let parts = [];
    for (let n = 1; n <= count; n += 1) if (entry.etags.has(n)) parts.push({ part_number: n, etag: entry.etags.get(n) });
    if (parts.length !== count) {
      const listed = await client.request("GET", `${uploadPath(entry)}/parts`);
      parts = listed.parts.map(({ part_number, etag }) => ({ part_number, etag }));
    }
    try {
      const answer = await retryTransient(() => client.request("POST", `${uploadPath(entry)}/complete`, { body: { parts } }));
      entry.image = answer.image;
    } catch (error) {
      if (error.status === 409 || error.status === 422 || error.status === 404) {
        forget(entry);
        uppy.setFileState(file.id, { s3Multipart: undefined }); // a retry starts afresh
      }
      throw error;
    }
    forget(entry);
    const location = `${client.baseUrl}/images/${encodeURIComponent(entry.image.id)}`;
    return { url: xmlDataUrl("CompleteMultipartUploadResult", { Location: location, Key: entry.upload.key }) };
  }

  async function signRequest(request) {
    const file = fileFor(request);
    const entry = entryOf(file.id);
    const { method, uploadId, partNumber } = request;
    if (method === "PUT" && uploadId === undefined) return single(file, entry);
    if (method === "POST" && uploadId === undefined) return create(file, entry);
    if (!entry.upload || entry.upload.upload_id !== uploadId) {
      throw new BrokerError("Unknown multipart upload.", { code: "not_found" });
    }
    if (method === "PUT") {
      const signed = await signPart(file, entry, partNumber);
      return { url: signed.url, headers: signed.headers };
    }
    if (method === "GET") {
      const listed = await client.request("GET", `${uploadPath(entry)}/parts`);
      for (const part of listed.parts) entry.etags.set(part.part_number, part.etag);
      return { url: xmlDataUrl("ListPartsResult", {}, listed.parts) };
    }
    if (method === "POST") return complete(file, entry);
    if (method === "DELETE") {
      await client.request("DELETE", uploadPath(entry)).catch(() => {}); // gone already: fine
      forget(entry);
      return { url: xmlDataUrl("DeleteResult") };
    }
    throw new BrokerError(`The broker does not sign ${method} requests for Uppy.`, { code: "unsupported" });
  }

  // Before uploading: a large file added again after a reload resumes its multipart upload.
  uppy.addPreProcessor(async (fileIds) => {
    for (const id of fileIds) {
      const file = uppy.getFile(id);
      if (!file || file.s3Multipart || file.size <= multipartThreshold) continue;
      const print = await fingerprint(file);
      const record = registry.get(print);
      if (!record) continue;
      const entry = entryOf(id);
      entry.upload = record;
      entry.fingerprint = print;
      entry.kind = "multipart";
      try {
        const listed = await client.request("GET", `${uploadPath(entry)}/parts`);
        if (record.part_size !== partSizeFor(file.size, partSize)) throw new BrokerError("other parts", { status: 409 });
        for (const part of listed.parts) entry.etags.set(part.part_number, part.etag);
      } catch (error) {
        if (error.status !== 404 && error.status !== 409) throw error;
        registry.delete(print);
        entries.delete(id);
        continue;
      }
      fileIdOfKey.set(record.key, id);
      // The plugin skips create, lists the parts (through signRequest) and sends the rest.
      uppy.setFileState(id, { s3Multipart: { uploadId: record.upload_id, key: record.key } });
    }
  });

  // A single PUT whose answer was lost and whose retry got 412 landed (the URL writes once).
  uppy.on("upload-error", (file, error) => {
    const entry = file && entries.get(file.id);
    if (entry?.kind === "single" && error?.status === 412) entry.landed = true;
  });

  // After uploading: each single PUT is confirmed (multipart ones were recorded by complete).
  uppy.addPostProcessor(async (fileIds) => {
    for (const id of fileIds) {
      const file = uppy.getFile(id);
      const entry = entries.get(id);
      if (!file || !entry) continue;
      if (entry.kind === "single" && (file.progress?.uploadComplete || entry.landed) && !entry.image) {
        const body = { key: entry.grant.key, filename: declaration(file).filename, filetype: file.type };
        try {
          entry.image = (await retryTransient(() => client.request("POST", "/images", { body }))).image;
        } catch (error) {
          entry.grant = null; // refused: a retry presigns afresh
          uppy.emit("upload-error", uppy.getFile(id), error);
          continue;
        }
      }
      if (!entry.image) continue;
      const current = uppy.getFile(id);
      const response = current.response || { status: 200, uploadURL: undefined, body: {} };
      uppy.setFileState(id, {
        error: null,
        progress: { ...current.progress, uploadComplete: true, percentage: 100 },
        response: { ...response, body: { ...response.body, key: entry.image.key, image: entry.image } },
      });
      uppy.emit("broker:image", uppy.getFile(id), entry.image);
      entries.delete(id);
    }
  });

  uppy.on("file-removed", (file) => entries.delete(file.id));

  return {
    shouldUseMultipart: (file) => file.size > multipartThreshold,
    getChunkSize: ({ size }) => partSizeFor(size, partSize),
    generateObjectKey: (file) => file.id,
    limit,
    signRequest,
  };
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
/** See BrokerClient#createUpload. */
export const createUpload = (file, options = {}) => clientFor(options).createUpload(file, options);
/** See BrokerClient#signedUrl. */
export const signedUrl = (id, options = {}) => clientFor(options).signedUrl(id, options);
/** See BrokerClient#signedUrls. */
export const signedUrls = (ids, options = {}) => clientFor(options).signedUrls(ids, options);
/** See BrokerClient#srcset. */
export const srcset = (image, options = {}) => clientFor(options).srcset(image, options);
/** See BrokerClient#srcsets. */
export const srcsets = (images, options = {}) => clientFor(options).srcsets(images, options);
export const getConfig = (options = {}) => clientFor(options).getConfig(options);
export const listImages = (params = {}, options = {}) => clientFor(options).listImages(params, options);
export const getImage = (id, options = {}) => clientFor(options).getImage(id);
export const patchImage = (id, changes, options = {}) => clientFor(options).patchImage(id, changes);
export const deleteImage = (id, options = {}) => clientFor(options).deleteImage(id);
export const recordUsage = (id, options = {}) => clientFor(options).recordUsage(id);
export const invalidate = (id) => defaultClient.invalidate(id);
