// Starts the servers the browser tests talk to: the chat example
// (examples/chat) and the conformance server (tests/, contract in
// docs/CONFORMANCE.md).
//
// The binaries come from CHAT_BIN / CONFORMANCE_SERVER_BIN, or
// <repo>/target/debug/{chat,conformance-server} by default; this package never
// builds them (run `cargo build` first). The chat page is told to load this
// package's own copy of the official browser client, so no network is needed.
// The servers run with --stop-when-stdin-closes and we hold their stdin open,
// so they also go away if this process dies without cleaning up.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = resolve(here, "..");
const repoRoot = resolve(packageRoot, "..", "..");

export const CHAT_BIN = process.env.CHAT_BIN || join(repoRoot, "target", "debug", "chat");
export const CONFORMANCE_SERVER_BIN =
  process.env.CONFORMANCE_SERVER_BIN || join(repoRoot, "target", "debug", "conformance-server");

/** Path of the browser build of @microsoft/signalr installed in this package. */
export function signalrBrowserJs() {
  return browserBundle("@microsoft/signalr", "signalr.min.js");
}

/**
 * Path of the browser build of @microsoft/signalr-protocol-msgpack installed in
 * this package. Loaded after signalr.min.js, it defines
 * `signalR.protocols.msgpack.MessagePackHubProtocol`.
 */
export function signalrMsgpackBrowserJs() {
  return browserBundle("@microsoft/signalr-protocol-msgpack", "signalr-protocol-msgpack.min.js");
}

function browserBundle(pkg, fileName) {
  const require = createRequire(join(packageRoot, "package.json"));
  const pkgJson = require.resolve(`${pkg}/package.json`, { paths: [packageRoot] });
  const file = join(dirname(pkgJson), "dist", "browser", fileName);
  if (!pkgJson.startsWith(join(packageRoot, "node_modules"))) {
    throw new Error(`${pkg} resolved outside this package (${pkgJson}); run \`npm ci\` in ${packageRoot}`);
  }
  if (!existsSync(file)) {
    throw new Error(`${file} is missing; run \`npm ci\` in ${packageRoot}`);
  }
  return file;
}

const LISTENING = /^Now listening on: (http:\/\/\S+)\s*$/m;

/**
 * Spawns the chat server on a free port and resolves to
 * `{ url, stop(), output() }` once it prints its listening line.
 */
export async function startChatServer({ timeoutMs = 20_000 } = {}) {
  if (!existsSync(CHAT_BIN)) {
    throw new Error(
      `chat server binary not found at ${CHAT_BIN}: run \`cargo build -p chat\` in ${repoRoot} ` +
        `(or set CHAT_BIN to the binary's path)`,
    );
  }
  const js = signalrBrowserJs();
  return startServer("chat server", CHAT_BIN, ["--port", "0", "--signalr-js", js, "--stop-when-stdin-closes"], timeoutMs);
}

/**
 * Spawns the conformance server (self-hosted) on a free port and resolves to
 * `{ url, stop(), output() }` once it prints its listening line.
 */
export async function startConformanceServer({ timeoutMs = 20_000 } = {}) {
  if (!existsSync(CONFORMANCE_SERVER_BIN)) {
    throw new Error(
      `conformance server binary not found at ${CONFORMANCE_SERVER_BIN}: run \`cargo build -p conformance-server\` in ${repoRoot} ` +
        `(or set CONFORMANCE_SERVER_BIN to the binary's path)`,
    );
  }
  return startServer(
    "conformance server",
    CONFORMANCE_SERVER_BIN,
    ["--port", "0", "--stop-when-stdin-closes"],
    timeoutMs,
  );
}

async function startServer(what, bin, args, timeoutMs) {
  const child = spawn(bin, args, {
    stdio: ["pipe", "pipe", "pipe"],
  });

  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => { stderr += chunk; });
  // An EPIPE on stdin (server already gone) must not crash the test process.
  child.stdin.on("error", () => {});

  const exited = new Promise((res) => child.once("exit", (code, signal) => res({ code, signal })));
  const output = () => `--- stdout ---\n${stdout}--- stderr ---\n${stderr}`;

  let timer;
  try {
    const url = await new Promise((res, rej) => {
      timer = setTimeout(
        () => rej(new Error(`${what} did not print its listening line within ${timeoutMs} ms\n${output()}`)),
        timeoutMs,
      );
      child.once("error", (err) => rej(new Error(`could not start ${bin}: ${err.message}`)));
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
        const m = LISTENING.exec(stdout);
        if (m) res(m[1]);
      });
      exited.then(({ code, signal }) =>
        rej(new Error(`${what} exited early (code ${code}, signal ${signal})\n${output()}`)),
      );
    });
    return { url, stop: () => stop(child, exited), output };
  } catch (err) {
    await stop(child, exited);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function stop(child, exited) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.stdin.end(); // --stop-when-stdin-closes: the polite way
  const graceful = await Promise.race([exited.then(() => true), delay(3_000).then(() => false)]);
  if (!graceful) {
    child.kill("SIGKILL");
    await exited;
  }
}

function delay(ms) {
  return new Promise((res) => setTimeout(res, ms).unref());
}
