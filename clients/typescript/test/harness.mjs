// A real natter for each test: `natter serve` as a child process on a free port, with a
// stream, subject prefix and database of its own, removed afterwards. NATS and Postgres are
// the machine's (NATS_URL, TEST_POSTGRES_URL); the binary is $NATTER_BIN or the workspace's
// debug build.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { NatterClient } from "../dist/index.js";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const bin = process.env.NATTER_BIN ?? resolve(root, "../../target/debug/natter");
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const pg = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432";

async function freePort() {
  return await new Promise((ok) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Natter {
  /** `env` overrides natter's settings, e.g. `{ NATTER_SEND_RATE_LIMIT: "5/2s" }`. */
  static async start(env = {}) {
    const id = `ts${randomBytes(6).toString("hex")}`;
    const natter = new Natter(id, await freePort(), env);
    await natter.spawn();
    return natter;
  }

  constructor(id, port, env = {}) {
    this.id = id;
    this.env = env;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.log = [];
  }

  async spawn() {
    this.child = spawn(bin, ["serve"], {
      env: {
        ...process.env,
        NATTER_HTTP_ADDR: `127.0.0.1:${this.port}`,
        NATS_URL: natsUrl,
        DATABASE_URL: `${pg}/${this.id}`,
        NATTER_STREAM: this.id.toUpperCase(),
        NATTER_SUBJECT_PREFIX: this.id,
        NATTER_SEND_RATE_LIMIT: "off",
        NATTER_ADMINS: "root",
        RUST_LOG: "warn",
        ...this.env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.child.stderr.on("data", (d) => this.log.push(String(d)));
    for (let i = 0; i < 300; i++) {
      try {
        const r = await fetch(`${this.base}/readyz`);
        if (r.ok) return;
      } catch {}
      await sleep(100);
    }
    throw new Error(`natter did not get ready:\n${this.log.join("")}`);
  }

  /** SIGKILL, as a crash. */
  async kill() {
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGKILL");
    await exited;
  }

  async restart() {
    await this.spawn();
  }

  /** A registered user with a client of their own (not connected yet). */
  async user(name, options = {}) {
    const r = await fetch(`${this.base}/api/v1/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: name, password: "password123" }),
    });
    if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${await r.text()}`);
    const session = await r.json();
    const client = new NatterClient({
      baseUrl: this.base,
      getToken: () => session.token,
      WebSocket,
      backoff: { initialMs: 50, maxMs: 500 },
      ...options,
    });
    return { ...session, client };
  }

  async stop() {
    if (this.child.exitCode === null) await this.kill();
    try {
      execFileSync("psql", ["-q", `${pg}/postgres`, "-c", `DROP DATABASE IF EXISTS ${this.id}`], { stdio: "ignore" });
    } catch {}
    await deleteStreams([this.id.toUpperCase(), `KV_${this.id.toUpperCase()}_idem`]);
  }
}

/** Deletes JetStream streams over the NATS protocol (no NATS client library needed). */
async function deleteStreams(names) {
  const { hostname, port } = new URL(natsUrl);
  await new Promise((ok) => {
    const socket = net.connect(Number(port || 4222), hostname, () => {
      socket.write('CONNECT {"verbose":false}\r\n');
      for (const name of names) socket.write(`PUB $JS.API.STREAM.DELETE.${name} 0\r\n\r\n`);
      socket.write("PING\r\n");
    });
    socket.on("data", (d) => {
      if (String(d).includes("PONG")) socket.end();
    });
    socket.on("close", ok);
    socket.on("error", ok);
  });
}

/** Resolves once `done()` holds, polling; rejects after `ms`. */
export async function until(done, ms = 10_000, what = "a condition") {
  const start = Date.now();
  while (!done()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export { sleep };
