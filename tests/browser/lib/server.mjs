// Starts the chat example server (examples/chat) for a browser test.
//
// The binary comes from CHAT_BIN, or <repo>/target/debug/chat by default; this
// package never builds it (run `cargo build -p chat` first). The page is told to
// load this package's own copy of the official browser client, so no network is
// needed. The server runs with --stop-when-stdin-closes and we hold its stdin
// open, so it also goes away if this process dies without cleaning up.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = resolve(here, "..");
const repoRoot = resolve(packageRoot, "..", "..");

export const CHAT_BIN = process.env.CHAT_BIN || join(repoRoot, "target", "debug", "chat");

/** Path of the browser build of @microsoft/signalr installed in this package. */
export function signalrBrowserJs() {
  const require = createRequire(join(packageRoot, "package.json"));
  const pkgJson = require.resolve("@microsoft/signalr/package.json", { paths: [packageRoot] });
  const file = join(dirname(pkgJson), "dist", "browser", "signalr.min.js");
  if (!pkgJson.startsWith(join(packageRoot, "node_modules"))) {
    throw new Error(`@microsoft/signalr resolved outside this package (${pkgJson}); run \`npm ci\` in ${packageRoot}`);
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
  const child = spawn(CHAT_BIN, ["--port", "0", "--signalr-js", js, "--stop-when-stdin-closes"], {
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
        () => rej(new Error(`chat server did not print its listening line within ${timeoutMs} ms\n${output()}`)),
        timeoutMs,
      );
      child.once("error", (err) => rej(new Error(`could not start ${CHAT_BIN}: ${err.message}`)));
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
        const m = LISTENING.exec(stdout);
        if (m) res(m[1]);
      });
      exited.then(({ code, signal }) =>
        rej(new Error(`chat server exited early (code ${code}, signal ${signal})\n${output()}`)),
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
