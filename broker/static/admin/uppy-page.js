// The Uppy example page: Uppy's Dashboard and @uppy/aws-s3 (the vendored bundle) uploading through
// the broker with broker.js's uppyAwsS3Options(). It signs in as the admin UI does (a token in the
// URL fragment, kept in sessionStorage for this tab).

import { applyBrokerRestrictions, configure, formatBytes, uppyAwsS3Options } from "../broker.js";
import { AwsS3, Dashboard, Uppy } from "../vendor/uppy.min.mjs";
import { h } from "./dom.js";
import { storedToken, takeTokenFromFragment } from "./session.js";

const status = document.getElementById("uppy-status");
takeTokenFromFragment();
if (!storedToken()) {
  status.textContent = "Sign in on the admin UI first (or open this page with #token=… in its address).";
} else {
  configure({ getToken: storedToken });
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(Dashboard, {
    inline: true,
    target: "#uppy",
    height: 420,
    proudlyDisplayPoweredByUppy: false,
    metaFields: [{ id: "caption", name: "Caption" }],
  });
  uppy.use(AwsS3, uppyAwsS3Options(uppy));
  uppy.on("broker:image", (file, image) => {
    const item = h("li", { "data-image-id": image.id, text: `${image.filename} · ${formatBytes(image.size)}` });
    document.getElementById("recorded").append(item);
  });
  try {
    const config = await applyBrokerRestrictions(uppy);
    status.textContent = `Up to ${formatBytes(config.max_upload_bytes)} a file; above ${formatBytes(
      config.multipart.threshold,
    )} in parts.`;
    document.body.dataset.ready = "true";
  } catch (error) {
    status.textContent = error.message;
  }
}
