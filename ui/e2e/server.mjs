// Starts `inferplane demo` for the end-to-end run: its own data dir, a free port, the built
// console; the operator token is read from the data dir.
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startDemo() {
  if (process.env.INFERPLANE_E2E_URL) {
    return { base: process.env.INFERPLANE_E2E_URL, token: process.env.INFERPLANE_E2E_TOKEN, stop: async () => {} };
  }
  const root = resolve(import.meta.dirname, "../..");
  const bin = process.env.INFERPLANE_BIN ?? join(resolve(root, process.env.CARGO_TARGET_DIR ?? "target"), "debug", "inferplane");
  if (!existsSync(bin)) throw new Error(`no inferplane binary at ${bin}: run cargo build --bin inferplane (or set INFERPLANE_BIN)`);
  const dataDir = mkdtempSync(join(tmpdir(), "inferplane-e2e-"));
  // Run as root, the demo's PostgreSQL runs as `postgres`, who must be able to enter it.
  chmodSync(dataDir, 0o755);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(
    bin,
    ["demo", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--no-ui-build", "--ui-dir", join(root, "ui", "dist")],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, INFERPLANE_LOG: process.env.INFERPLANE_LOG ?? "warn" } },
  );
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  let exited = null;
  child.on("exit", (code) => (exited = code));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`inferplane demo exited with ${exited}:\n${log}`);
    if (Date.now() > deadline) throw new Error(`inferplane demo not ready after 60 s:\n${log}`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok && existsSync(join(dataDir, "admin-token"))) break;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  return {
    base,
    token,
    log: () => log,
    stop: async () => {
      child.kill("SIGTERM");
      for (let i = 0; i < 100 && exited === null; i++) await sleep(100);
      if (exited === null) child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
