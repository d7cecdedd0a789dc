/**
 * Builds broker/static/vendor/uppy.min.mjs and uppy.min.css from the npm packages pinned in
 * package.json / package-lock.json (run it with `make vendor`; the output is committed).
 *
 * Why not the `uppy` package's prebuilt dist/uppy.min.mjs: it embeds @uppy/aws-s3 6.1.0, whose
 * signRequest cannot return the `headers` a presigned URL was signed with (6.2.0 added them), and
 * every broker URL signs Content-MD5 and Content-Type. So the bundle is made from the scoped
 * packages: @uppy/core, @uppy/dashboard and @uppy/aws-s3 (and what they import), by esbuild.
 *
 * The module exports Uppy, BasePlugin, Dashboard and AwsS3. The stylesheet is @uppy/core's and
 * @uppy/dashboard's (Dashboard needs both). Both files open with a comment naming every bundled
 * package with its version and licence text (MIT, one ISC), as those licences ask.
 *
 * Deterministic: the same lock gives byte-identical files (no dates, no absolute paths, sorted
 * lists). `node tools/vendor-uppy.mjs --check` rebuilds in memory and fails if the committed
 * files differ.
 */

import { Buffer } from "node:buffer";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT_DIR = path.join(ROOT, "broker", "static", "vendor");
const JS_OUT = path.join(OUT_DIR, "uppy.min.mjs");
const CSS_OUT = path.join(OUT_DIR, "uppy.min.css");

const JS_ENTRY = `
export { default as Uppy, BasePlugin } from "@uppy/core";
export { default as Dashboard } from "@uppy/dashboard";
export { default as AwsS3 } from "@uppy/aws-s3";
`;
const CSS_ENTRY = `
@import "./node_modules/@uppy/core/dist/style.min.css";
@import "./node_modules/@uppy/dashboard/dist/style.min.css";
`;
// The packages the stylesheet comes from (CSS imports name files, not packages).
const CSS_PACKAGES = ["@uppy/core", "@uppy/dashboard"];

const COMMON = {
  absWorkingDir: ROOT,
  bundle: true,
  minify: true,
  write: false,
  metafile: true,
  logLevel: "warning",
};

/** The package (name) a bundled input path belongs to, e.g. "@uppy/core" or "preact". */
function packageOf(input) {
  const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  return match ? match[1] : null;
}

/** The licence text of a package: its LICENSE file, else the "License" section of its README. */
function licenceText(dir, name) {
  const file = readdirSync(dir).find((entry) => /^licen[cs]e(\.(md|txt))?$/i.test(entry));
  if (file) return readFileSync(path.join(dir, file), "utf8").trim();
  const readme = readdirSync(dir).find((entry) => /^readme(\.md)?$/i.test(entry));
  if (readme) {
    // e.g. mime-match and wildcard ship no LICENSE file; their README carries the licence.
    const text = readFileSync(path.join(dir, readme), "utf8");
    const section = /^##\s+Licen[cs]e.*$([\s\S]*?)(?=^##\s|(?![\s\S]))/im.exec(text);
    if (section && section[1].trim()) return section[1].trim();
  }
  throw new Error(`${name}: no licence text found (LICENSE file or README section)`);
}

/** A leading comment with the name, version, licence and licence text of every package. */
function licenceBanner(packages, title) {
  const blocks = [...new Set(packages)].sort().map((name) => {
    const dir = path.join(ROOT, "node_modules", name);
    const meta = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
    const text = licenceText(dir, name).replaceAll("*/", "* /");
    return `${meta.name}@${meta.version} (${meta.license})\n\n${text}`;
  });
  const separator = `\n\n${"-".repeat(78)}\n\n`;
  return `/*! ${title}\n\n${blocks.join(separator)}\n*/\n`;
}

function versionOf(name) {
  const file = path.join(ROOT, "node_modules", name, "package.json");
  return JSON.parse(readFileSync(file, "utf8")).version;
}

async function build() {
  const uppyVersions = ["@uppy/core", "@uppy/dashboard", "@uppy/aws-s3"]
    .map((name) => `${name}@${versionOf(name)}`)
    .join(", ");

  const js = await esbuild.build({
    ...COMMON,
    stdin: { contents: JS_ENTRY, resolveDir: ROOT, sourcefile: "uppy-entry.mjs", loader: "js" },
    format: "esm",
    platform: "browser",
    target: "es2022",
    // Comments marked as legal (/*! … */, @license) go to the end of the file, kept.
    legalComments: "eof",
    outfile: JS_OUT,
  });
  const jsPackages = Object.keys(js.metafile.inputs).map(packageOf).filter(Boolean);
  const jsBanner = licenceBanner(
    jsPackages,
    `Uppy for the image broker: ${uppyVersions}, bundled by tools/vendor-uppy.mjs (make vendor).\n` +
      "Exports: Uppy, BasePlugin, Dashboard, AwsS3. Bundled packages and their licences:",
  );

  const css = await esbuild.build({
    ...COMMON,
    stdin: { contents: CSS_ENTRY, resolveDir: ROOT, sourcefile: "uppy-entry.css", loader: "css" },
    legalComments: "eof",
    outfile: CSS_OUT,
  });
  const cssBanner = licenceBanner(
    CSS_PACKAGES,
    `Uppy Dashboard styles for the image broker: ${uppyVersions}, bundled by tools/vendor-uppy.mjs.\n` +
      "From @uppy/core and @uppy/dashboard (dist/style.min.css); their licences:",
  );

  return new Map([
    [JS_OUT, jsBanner + js.outputFiles[0].text],
    [CSS_OUT, cssBanner + css.outputFiles[0].text],
  ]);
}

const outputs = await build();
if (process.argv.includes("--check")) {
  const stale = [...outputs].filter(
    ([file, text]) => !existsSync(file) || readFileSync(file, "utf8") !== text,
  );
  for (const [file] of stale) {
    process.stderr.write(`${path.relative(ROOT, file)} differs from the packages: run make vendor\n`);
  }
  process.exit(stale.length ? 1 : 0);
}
for (const [file, text] of outputs) {
  writeFileSync(file, text);
  process.stdout.write(`${path.relative(ROOT, file)}: ${Buffer.byteLength(text)} bytes\n`);
}
