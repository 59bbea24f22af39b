// A node:test reporter that repeats every failed test at the very end of the run, with its
// error and where it was thrown, so that the tail of a long log says what failed and why.
// Used beside the TAP reporter (package.json), which stays the run's main output.

/** Lines that name a failed test, its error and the first frames of its stack. */
function describeFailure({ name, nesting, details, file, line }) {
    const error = details?.error;
    const cause = error?.cause ?? error;
    const message = String(cause?.message ?? cause ?? "failed").split("\n").slice(0, 12);
    const stack = String(cause?.stack ?? "")
        .split("\n")
        .filter((frame) => frame.trim().startsWith("at ") && !frame.includes("(node:"))
        .slice(0, 4);
    return [
        `not ok: ${"  ".repeat(nesting)}${name}${file ? ` (${file}:${line})` : ""}`,
        ...message.map((text) => `    ${text}`),
        ...stack.map((frame) => `    ${frame.trim()}`),
    ];
}

export default async function* failuresReporter(source) {
    const failures = [];
    for await (const event of source) {
        // A suite fails because a test in it failed: the test itself is the one to show.
        if (event.type === "test:fail" && event.data.details?.type !== "suite") {
            failures.push(event.data);
        }
    }
    if (failures.length === 0) {
        return;
    }
    yield `\n# ${failures.length} failed test(s), repeated here:\n`;
    for (const failure of failures) {
        yield `${describeFailure(failure).map((text) => `# ${text}`).join("\n")}\n`;
    }
}
