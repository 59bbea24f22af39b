// Headless Chromium for the browser tests: Debian's `chromium` package (or the
// executable named by CHROMIUM), driven by playwright-core. Playwright never
// downloads a browser here; a missing executable is an error, not a skip.

import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. Install Debian's package ` +
        "(`apt-get update && apt-get install -y chromium`) or set CHROMIUM to a Chromium executable.",
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 30_000,
  });
}

/**
 * Opens a page in its own browser context (its own cookies and storage, like a
 * different user) and records what a person would not see but a failure report
 * needs: console errors, page errors, failed requests and every URL requested.
 */
export async function openUserPage(browser, name) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const log = { name, console: [], pageErrors: [], failedRequests: [], badResponses: [], requests: [] };
  page.on("console", (msg) => {
    if (msg.type() !== "error" && msg.type() !== "warning") return;
    const where = msg.location()?.url;
    // Chromium asks for /favicon.ico on its own; the page has no icon and the
    // server answers 404, which Chromium logs as a console error. Not the page's doing.
    if (where && isFavicon(where)) return;
    log.console.push(`${msg.type()}: ${msg.text()}${where ? ` (${where})` : ""}`);
  });
  page.on("response", (res) => {
    if (res.status() >= 400 && !isFavicon(res.url())) log.badResponses.push(`${res.status()} ${res.url()}`);
  });
  page.on("pageerror", (err) => log.pageErrors.push(String(err)));
  page.on("request", (req) => log.requests.push(req.url()));
  page.on("requestfailed", (req) => log.failedRequests.push(`${req.url()} (${req.failure()?.errorText})`));
  return { context, page, log };
}

function isFavicon(url) {
  try {
    return new URL(url).pathname === "/favicon.ico";
  } catch {
    return false;
  }
}

/** A readable snapshot of a chat page for assertion messages. */
export async function describePage({ page, log }) {
  let status = "?";
  let items = [];
  try {
    status = await page.locator("#status").textContent({ timeout: 1_000 });
    items = await page.locator("#messages li").allTextContents();
  } catch (err) {
    status = `(could not read page: ${err.message})`;
  }
  return [
    `page ${log.name}: status=${JSON.stringify(status)}`,
    `  messages=${JSON.stringify(items)}`,
    `  console=${JSON.stringify(log.console)}`,
    `  pageErrors=${JSON.stringify(log.pageErrors)}`,
    `  failedRequests=${JSON.stringify(log.failedRequests)}`,
    `  badResponses=${JSON.stringify(log.badResponses)}`,
  ].join("\n");
}
