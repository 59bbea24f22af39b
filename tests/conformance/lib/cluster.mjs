// A relay and several app servers for one test file: real processes on loopback ports, each
// read for its `Now listening on:` line, signalled with real SIGINT, SIGTERM and SIGKILL, and
// all killed when the test process ends.
//
//   CONFORMANCE_SERVER_BIN  path of conformance-server (default <repo>/target/debug/conformance-server)
//   RELAY_BIN               path of switchboard-service (default <repo>/target/debug/switchboard-service)
//   DEBUG                   forward the processes' stderr

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DEBUG } from "./server.mjs";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SERVER_BIN = process.env.CONFORMANCE_SERVER_BIN
    || path.join(REPO_ROOT, "target", "debug", "conformance-server");
const RELAY_BIN = process.env.RELAY_BIN || path.join(REPO_ROOT, "target", "debug", "switchboard-service");
const START_TIMEOUT_MS = 20_000;
const LISTENING_RE = /Now listening on: (http:\/\/127\.0\.0\.1:(\d+))/;

const running = new Set();
process.on("exit", () => {
    for (const proc of running) {
        try {
            proc.kill("SIGKILL");
        } catch {
            // gone
        }
    }
});

/** A started process: its base URL, its exit (a promise of {code, signal}), and its stderr. */
class Started {
    constructor(name, proc, url) {
        this.name = name;
        this.proc = proc;
        this.url = url;
        this.stderr = "";
        this.exited = new Promise((resolve) => {
            proc.once("exit", (code, signal) => {
                running.delete(proc);
                resolve({ code, signal });
            });
        });
        this.hasExited = false;
        this.exited.then(() => {
            this.hasExited = true;
        });
    }

    /** Sends `signal` (default SIGINT). */
    signal(signal = "SIGINT") {
        this.proc.kill(signal);
    }

    /** The exit within `ms`, or a failure naming the process. */
    async exit(ms) {
        let timer;
        const timeout = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${ms} ms; stderr:\n${this.stderr}`)), ms);
        });
        try {
            return await Promise.race([this.exited, timeout]);
        } finally {
            clearTimeout(timer);
        }
    }

    /** Kills it (SIGKILL) and waits for the end. */
    async kill() {
        if (!this.hasExited) {
            this.proc.kill("SIGKILL");
        }
        await this.exited;
    }
}

async function start(name, bin, args, env = {}) {
    if (!existsSync(bin)) {
        throw new Error(`${bin} not found: build it first with \`cargo build -p conformance-server -p switchboard-service\``);
    }
    const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    running.add(proc);
    let stderr = "";
    proc.stderr.on("data", (chunk) => {
        if (DEBUG) {
            process.stderr.write(`[${name}] ${chunk}`);
        }
        stderr = (stderr + chunk.toString("utf8")).slice(-64 * 1024);
        if (started) {
            started.stderr = stderr;
        }
    });
    let started = null;
    const url = await new Promise((resolve, reject) => {
        let stdout = "";
        const timer = setTimeout(() => reject(new Error(`${name} did not start within ${START_TIMEOUT_MS} ms; stderr:\n${stderr}`)), START_TIMEOUT_MS);
        proc.stdout.on("data", (chunk) => {
            stdout += chunk.toString("utf8");
            const match = LISTENING_RE.exec(stdout);
            if (match) {
                clearTimeout(timer);
                resolve(match[1]);
            }
        });
        proc.once("exit", (code, signal) => {
            clearTimeout(timer);
            reject(new Error(`${name} exited during start-up (code ${code}, signal ${signal}); stderr:\n${stderr}`));
        });
    });
    started = new Started(name, proc, url);
    started.stderr = stderr;
    return started;
}

/**
 * A relay; `relay.connectionString` points app servers at it. Options: `port` (default any
 * free one) and `key` (default random), so that a relay can be started again where one was;
 * `maxClientsPerHub`, which it also reports as its capacity in status pings; `redis` (a URL),
 * `nodeId` and `nodeTimeoutSecs` for a node of a relay cluster.
 */
export async function startRelay(options = {}) {
    const key = options.key ?? randomBytes(24).toString("hex");
    if (process.env.SWITCHBOARD_DEBUG_LOG_DIR) {
        // The suites' secrets check looks for every key in the servers' debug logs.
        appendFileSync(path.join(process.env.SWITCHBOARD_DEBUG_LOG_DIR, "secrets.txt"), `${key}\n`);
    }
    const args = ["--listen", `127.0.0.1:${options.port ?? 0}`, "--access-key", key];
    const toml = [];
    if (options.maxClientsPerHub !== undefined) {
        toml.push(`max_clients_per_hub = ${options.maxClientsPerHub}`);
    }
    if (options.nodeTimeoutSecs !== undefined) {
        toml.push(`node_timeout_secs = ${options.nodeTimeoutSecs}`);
    }
    if (toml.length > 0) {
        const dir = mkdtempSync(path.join(os.tmpdir(), "switchboard-relay-"));
        const file = path.join(dir, "relay.toml");
        writeFileSync(file, toml.join("\n") + "\n");
        args.push("--config", file);
    }
    if (options.redis) {
        args.push("--redis", options.redis);
    }
    if (options.nodeId) {
        args.push("--node-id", options.nodeId);
    }
    const relay = await start(options.nodeId ?? "relay", RELAY_BIN, args);
    const port = new URL(relay.url).port;
    relay.key = key;
    relay.port = Number(port);
    relay.connectionString = `Endpoint=http://127.0.0.1;Port=${port};AccessKey=${key};Version=1.0;`;
    return relay;
}

/**
 * An app server named `name` in service mode through `relay` (null: only through the
 * endpoints `env` names, `Azure__SignalR__ConnectionString__{Name}__{Type}`), with `env`
 * added to its environment (`Azure__SignalR__…` options).
 */
export async function startAppServer(relay, name, env = {}) {
    const service = relay ? ["--service", relay.connectionString] : [];
    return await start(name, SERVER_BIN, ["--port", "0", ...service, "--server-name", name], env);
}

/** A self-hosted app server named `name` sharing its hubs through the Redis at `redisUrl`. */
export async function startBackplaneServer(redisUrl, name, env = {}) {
    return await start(name, SERVER_BIN, ["--port", "0", "--redis", redisUrl, "--server-name", name], env);
}

/**
 * Runs an app server that should refuse its configuration: its exit status and stderr.
 */
export async function refusedAppServer(name, env, ms = 20_000) {
    const proc = spawn(SERVER_BIN, ["--port", "0", "--server-name", name], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...env },
    });
    running.add(proc);
    let stderr = "";
    proc.stderr.on("data", (chunk) => {
        stderr += chunk.toString("utf8");
    });
    let timer;
    const exited = await new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${name} did not exit within ${ms} ms; stderr:\n${stderr}`)), ms);
        proc.once("exit", (code, signal) => resolve({ code, signal }));
    }).finally(() => {
        clearTimeout(timer);
        running.delete(proc);
    });
    return { ...exited, stderr };
}

/** The environment naming `endpoints` ({name, relay, type}) as the Azure SDK reads them. */
export function endpointsEnv(endpoints) {
    const env = {};
    for (const { name, relay, type = "primary" } of endpoints) {
        env[`Azure__SignalR__ConnectionString__${name}__${type}`] = relay.connectionString;
    }
    return env;
}

/** Adds or removes an endpoint of a running app server (POST /endpoints): {status, text}. */
export async function changeEndpoint(server, action, relay, type = "primary", name = "") {
    const response = await fetch(`${server.url}/endpoints`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ action, connectionString: relay.connectionString, type, name }),
    });
    return { status: response.status, text: await response.text() };
}

/** The relay's app-server connections to `hub`, from its /metrics. */
export async function relayServerConnections(relay, hub) {
    const text = await (await fetch(`${relay.url}/metrics`)).text();
    const match = new RegExp(`^switchboard_server_connections\\{hub="${hub}"\\} (\\d+)$`, "m").exec(text);
    return match ? Number(match[1]) : 0;
}

/** The relay's client connections to `hub` (summed over transports), from its /metrics. */
export async function relayClients(relay, hub) {
    const text = await (await fetch(`${relay.url}/metrics`)).text();
    let count = 0;
    for (const line of text.split("\n")) {
        const match = /^switchboard_client_connections\{hub="([^"]*)",transport="[^"]*"\} (\d+)$/.exec(line);
        if (match && match[1] === hub) {
            count += Number(match[2]);
        }
    }
    return count;
}
