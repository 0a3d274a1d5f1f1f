// Bundles the client into one ES module for natter's web page (web/natter-client.js, which
// the natter binary embeds: `cargo build` needs no npm). With --check, writes nothing and exits
// 1 when the committed bundle does not match what this source builds.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(root, "../../web/natter-client.js");
const result = await build({
  entryPoints: [resolve(root, "src/index.ts")],
  bundle: true,
  format: "esm",
  target: "es2020",
  write: false,
  legalComments: "none",
  banner: { js: "// Built from clients/typescript by `npm run build:web`; do not edit." },
});
const text = result.outputFiles[0].text;
const current = existsSync(out) ? readFileSync(out, "utf8") : null;
if (process.argv.includes("--check")) {
  if (current !== text) {
    console.error("web/natter-client.js is stale: run `npm run build:web` in clients/typescript");
    process.exit(1);
  }
} else if (current !== text) {
  writeFileSync(out, text);
  console.log("wrote web/natter-client.js");
}
