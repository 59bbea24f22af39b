// A real redis-server for one test file, on a free loopback port, with nothing saved to disk;
// stopped (SIGKILL) when the test process ends. `redis-server` must be installed (the test
// script installs it); without it starting fails with a message that says so.

import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import { DEBUG } from "./server.mjs";

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

/** A free loopback port (the kernel's pick, released again). */
export async function freePort() {
    return await new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

/** Starts redis-server on `port` (default a free one): {port, url, proc, kill(), cli(...args)}. */
export async function startRedis(port) {
    port ??= await freePort();
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    const proc = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    running.add(proc);
    let output = "";
    await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s:\n${output}`)), 10_000);
        proc.once("error", (error) => {
            clearTimeout(timer);
            reject(new Error(`cannot run redis-server (install it: apt-get install redis-server): ${error.message}`));
        });
        proc.stdout.on("data", (chunk) => {
            output += chunk.toString("utf8");
            if (DEBUG) {
                process.stderr.write(`[redis] ${chunk}`);
            }
            if (output.includes("Ready to accept connections")) {
                clearTimeout(timer);
                resolve();
            }
        });
        proc.once("exit", (code) => {
            clearTimeout(timer);
            reject(new Error(`redis-server exited with ${code}:\n${output}`));
        });
    });
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    return {
        port,
        url: `redis://127.0.0.1:${port}/`,
        proc,
        async kill() {
            running.delete(proc);
            proc.kill("SIGKILL");
            await exited;
        },
        /** Runs redis-cli against it; its output. */
        cli(...cliArgs) {
            return execFileSync("redis-cli", ["-p", String(port), ...cliArgs]).toString("utf8");
        },
    };
}

/**
 * Kills `redis` (SIGKILL) and starts a new, empty one on its port: the new one. In
 * `processes` (the test's list of what to kill at the end), the new one takes the old one's place.
 */
export async function restartRedis(redis, processes = []) {
    const port = redis.port;
    await redis.kill();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const started = await startRedis(port);
    const index = processes.indexOf(redis);
    if (index >= 0) {
        processes[index] = started;
    }
    return started;
}
