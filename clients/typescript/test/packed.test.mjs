// The client as an app developer gets it: `npm pack` of this folder installed into a scratch
// project, the README's first program type-checked there under `strict` and run against a
// real natter.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { Natter } from "./harness.mjs";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const scratch = mkdtempSync(join(tmpdir(), "natter-client-"));
let server;
after(async () => {
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** The README's first ```ts block, as a reader would copy it. */
function readmeProgram() {
  const readme = readFileSync(resolve(root, "README.md"), "utf8");
  const block = readme.match(/```ts\n([\s\S]*?)```/);
  assert.ok(block, "the README has a TypeScript example");
  return block[1];
}

const run = (cmd, args, options = {}) =>
  execFileSync(cmd, args, { cwd: scratch, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...options });

test("the packed tarball installs, and the README's program type-checks and runs", async () => {
  // `npm pack` builds first (prepack): a clean checkout has no dist/.
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", scratch], { cwd: root }));
  const files = packed[0].files.map((f) => f.path);
  assert.ok(files.includes("dist/index.js") && files.includes("dist/index.d.ts"), files.join(" "));
  const tarball = readdirSync(scratch).find((f) => f.endsWith(".tgz"));
  writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
  // The versions this folder tests with, from the cache when it has them.
  const lock = JSON.parse(readFileSync(resolve(root, "package-lock.json"), "utf8")).packages;
  const pin = (name) => `${name}@${lock[`node_modules/${name}`].version}`;
  run("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--prefer-offline",
    `./${tarball}`,
    pin("ws"),
    pin("@types/ws"),
    pin("@types/node"),
    pin("typescript"),
  ]);
  writeFileSync(join(scratch, "app.ts"), readmeProgram());
  writeFileSync(
    join(scratch, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noUncheckedIndexedAccess: true,
        outDir: "out",
      },
      include: ["app.ts"],
    }),
  );
  try {
    run(join(scratch, "node_modules/.bin/tsc"), ["-p", "."]);
  } catch (e) {
    assert.fail(`the README's program does not type-check:\n${e.stdout}${e.stderr}`);
  }

  server = await Natter.start();
  const registered = await fetch(`${server.base}/api/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "alice", password: "correct horse" }),
  });
  assert.equal(registered.status, 201);
  const out = run("node", ["out/app.js"], { env: { ...process.env, NATTER_URL: server.base }, timeout: 30_000 });
  assert.match(out, /socket connected/);
  assert.match(out, /hello was sent/);
});
