// Starts (or locates) the conformance server for one test file.
//
// Unless SIGNALR_URL is set, the conformance-server binary is spawned with `--port 0` and
// the base URL is read from its `Now listening on: http://127.0.0.1:<port>` stdout line.
//
//   SIGNALR_URL             use an already running server (e.g. http://127.0.0.1:5000)
//   CONFORMANCE_SERVER_BIN  path of the binary (default <repo>/target/debug/conformance-server)
//   CONFORMANCE_SERVER_ARGS extra arguments, split on spaces
//   DEBUG                   forward the server's stderr and enable client trace logging
//
// node --test runs every test file in its own process, so every file gets its own server.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";

export const DEBUG = !!process.env.DEBUG;

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const DEFAULT_BIN = path.join(REPO_ROOT, "target", "debug", "conformance-server");
const START_TIMEOUT_MS = 20_000;
const LISTENING_RE = /^Now listening on: (http:\/\/127\.0\.0\.1:(\d+))\s*$/;
const MAX_STDERR_BYTES = 256 * 1024;

let child = null;
let startPromise = null;
let stderrBuffer = [];
let stderrBytes = 0;
let stderrDumped = false;
let baseUrl = null;
let stopping = false;

/** True when this process spawned the server (so the server is not shared with anything else). */
export function ownsServer() {
    return !process.env.SIGNALR_URL;
}

function rememberStderr(chunk) {
    if (DEBUG) {
        process.stderr.write(chunk);
        return;
    }
    stderrBuffer.push(chunk);
    stderrBytes += chunk.length;
    while (stderrBytes > MAX_STDERR_BYTES && stderrBuffer.length > 1) {
        stderrBytes -= stderrBuffer.shift().length;
    }
}

function dumpStderr(reason) {
    if (DEBUG || stderrDumped || stderrBuffer.length === 0) {
        return;
    }
    stderrDumped = true;
    process.stderr.write(`\n----- conformance-server stderr (${reason}) -----\n`);
    process.stderr.write(Buffer.concat(stderrBuffer).toString("utf8"));
    process.stderr.write("\n----- end of conformance-server stderr -----\n");
}

function killNow() {
    if (child && child.exitCode === null && child.signalCode === null) {
        try {
            child.kill("SIGKILL");
        } catch {
            // already gone
        }
    }
}

process.on("exit", (code) => {
    killNow();
    if (code !== 0 || (process.exitCode ?? 0) !== 0) {
        dumpStderr("test failures");
    }
});

async function spawnServer() {
    const bin = process.env.CONFORMANCE_SERVER_BIN || DEFAULT_BIN;
    if (!existsSync(bin)) {
        throw new Error(
            `conformance-server binary not found at ${bin}. ` +
            "Build it first with `cargo build -p conformance-server` " +
            "(or set CONFORMANCE_SERVER_BIN to the binary, or SIGNALR_URL to a running server).",
        );
    }
    const extraArgs = (process.env.CONFORMANCE_SERVER_ARGS || "").split(" ").filter((a) => a.length > 0);
    const args = ["--port", "0", ...extraArgs];

    child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stderr.on("data", rememberStderr);

    return await new Promise((resolve, reject) => {
        let stdoutText = "";
        let settled = false;
        const finish = (err, url) => {
            if (settled) {
                return;
            }
            settled = true;
            clearTimeout(timer);
            if (err) {
                dumpStderr("start-up failure");
                killNow();
                reject(err);
            } else {
                resolve(url);
            }
        };
        const timer = setTimeout(() => {
            finish(new Error(`conformance-server (${bin} ${args.join(" ")}) did not print ` +
                `"Now listening on: http://127.0.0.1:<port>" within ${START_TIMEOUT_MS / 1000} s. ` +
                `stdout so far: ${JSON.stringify(stdoutText.slice(0, 2000))}`));
        }, START_TIMEOUT_MS);

        child.stdout.on("data", (chunk) => {
            if (DEBUG) {
                process.stderr.write(`[server stdout] ${chunk}`);
            }
            if (settled) {
                return;
            }
            stdoutText += chunk.toString("utf8");
            for (const line of stdoutText.split(/\r?\n/)) {
                const m = LISTENING_RE.exec(line);
                if (m) {
                    finish(null, m[1]);
                    return;
                }
            }
        });
        child.on("error", (err) => finish(new Error(`failed to spawn ${bin}: ${err.message}`)));
        child.on("exit", (code, signal) => {
            if (!settled) {
                finish(new Error(`conformance-server exited during start-up (code ${code}, signal ${signal}). ` +
                    `stdout: ${JSON.stringify(stdoutText.slice(0, 2000))}`));
            } else if (!stopping) {
                // The server died while tests were running: this is always worth seeing.
                process.stderr.write(`conformance-server exited unexpectedly (code ${code}, signal ${signal})\n`);
                dumpStderr("unexpected exit");
            }
        });
    });
}

/** Returns the base URL (no trailing slash) of the server, starting it on first use. */
export async function startServer() {
    if (process.env.SIGNALR_URL) {
        return process.env.SIGNALR_URL.replace(/\/+$/, "");
    }
    if (!startPromise) {
        startPromise = spawnServer();
    }
    return await startPromise;
}

/** Stops the spawned server (SIGTERM, then SIGKILL after 3 s). Safe to call more than once. */
export async function stopServer() {
    if (!child) {
        return;
    }
    stopping = true;
    const proc = child;
    if (proc.exitCode !== null || proc.signalCode !== null) {
        return;
    }
    await new Promise((resolve) => {
        const timer = setTimeout(() => {
            killNow();
            resolve();
        }, 3000);
        proc.once("exit", () => {
            clearTimeout(timer);
            resolve();
        });
        try {
            proc.kill("SIGTERM");
        } catch {
            clearTimeout(timer);
            resolve();
        }
    });
}

/**
 * Registers root-level before/after hooks for the calling test file and returns an object whose
 * `url` property holds the server's base URL once the `before` hook has run.
 */
export function useServer() {
    const handle = {
        get url() {
            if (!baseUrl) {
                throw new Error("server URL requested before the server was started");
            }
            return baseUrl;
        },
        get wsUrl() {
            return this.url.replace(/^http/, "ws");
        },
    };
    before(async () => {
        baseUrl = await startServer();
    });
    after(async () => {
        await stopServer();
        if ((process.exitCode ?? 0) !== 0) {
            dumpStderr("test failures");
        }
    });
    return handle;
}
