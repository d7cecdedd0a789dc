// Test module (tests/browser/test_uppy_bundle.py injects it into the real /admin/ page, so the
// admin UI's own Content-Security-Policy applies): the vendored Uppy bundle with Dashboard inline
// and AwsS3 in signRequest mode, doing the broker's single-PUT flow (presign with the file's MD5,
// PUT with the returned headers, confirm). The token comes in this module's URL fragment.
// Browser globals are read through globalThis, so any lint configuration knows them.
import { AwsS3, Dashboard, Uppy } from "/static/vendor/uppy.min.mjs";
import { BrokerClient, md5Base64 } from "/static/broker.js";

const { document, URL, URLSearchParams } = globalThis;
const token = new URLSearchParams(new URL(import.meta.url).hash.slice(1)).get("token");
const broker = new BrokerClient({ token });

const styles = document.createElement("link");
styles.rel = "stylesheet";
styles.href = "/static/vendor/uppy.min.css";
const stylesLoaded = new Promise((resolve, reject) => {
  styles.onload = resolve;
  styles.onerror = reject;
});
document.head.append(styles);
const target = document.createElement("main");
target.id = "uppy";
document.body.append(target);
await stylesLoaded;

const probe = { signRequests: [], images: [], errors: [] };
globalThis.uppyProbe = probe;

const uppy = new Uppy({ autoProceed: false });
uppy.use(Dashboard, {
  inline: true,
  target: "#uppy",
  height: 420,
  proudlyDisplayPoweredByUppy: false,
});
uppy.use(AwsS3, {
  shouldUseMultipart: false,
  // signRequest never sees the file: the key Uppy proposes is the file's id, to find it again.
  generateObjectKey: (file) => file.id,
  async signRequest(request) {
    probe.signRequests.push({ ...request });
    if (request.method !== "PUT" || "uploadId" in request) {
      throw new Error(`this probe signs single PUTs only, not ${request.method}`);
    }
    const file = uppy.getFile(request.key);
    const grant = await broker.request("POST", "/images/presign-upload", {
      body: {
        filename: file.name,
        filetype: file.type,
        size: file.size,
        content_md5: await md5Base64(file.data),
      },
    });
    return { url: grant.url, key: grant.key, headers: grant.headers };
  },
});
uppy.on("upload-success", async (file, response) => {
  try {
    const body = { key: response.body.key };
    probe.images.push((await broker.request("POST", "/images", { body })).image);
  } catch (error) {
    probe.errors.push(String(error));
  }
});
uppy.on("upload-error", (file, error) => probe.errors.push(String(error)));
target.dataset.ready = "true";
