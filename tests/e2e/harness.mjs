// The browser E2E harness: holdfast-server (sync server + static files from
// the repository root), headless Chromium through playwright-core, one
// browser context per simulated device (each has its own IndexedDB), and
// node-side automerge-repo 2.5.6 helpers.
//
// Needs: pkg/wasm/ built (scripts/build-pkg.sh --dev) and holdfast-server
// built (cargo build -p holdfast-server); the binary is looked up in
// $HOLDFAST_SERVER_BIN, else $CARGO_TARGET_DIR/debug, else target/debug.
// Chromium is /usr/bin/chromium (override with $HOLDFAST_CHROMIUM); nothing
// is ever downloaded.
//
// Waiting is always on a condition (page.waitForFunction, events), bounded
// by a timeout that names what was awaited; there are no fixed sleeps.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const TIMEOUT = Number(process.env.HOLDFAST_E2E_TIMEOUT ?? 20_000);

export const SERVER_BIN =
  process.env.HOLDFAST_SERVER_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "debug", "holdfast-server");

export const CHROMIUM = process.env.HOLDFAST_CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Reject with a message naming `what` if `promise` takes longer than `ms`. */
export function within(promise, what, ms = TIMEOUT) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- server

/**
 * Start holdfast-server on a free port of 127.0.0.1 with a fresh data
 * directory, serving static files from `www` (the repository root by
 * default, so that /pkg/index.js and /tests/e2e/page.html exist).
 * Resolves once it listens: `{ ws, http, stop() }`.
 */
export async function startServer({ www = ROOT } = {}) {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(`${SERVER_BIN} is missing: run cargo build -p holdfast-server (make test does)`);
  }
  if (!existsSync(join(ROOT, "pkg", "wasm", "holdfast_bg.wasm"))) {
    throw new Error("pkg/wasm/ is missing: run scripts/build-pkg.sh --dev (make test does)");
  }
  const data = mkdtempSync(join(tmpdir(), "holdfast-e2e-"));
  const child = spawn(SERVER_BIN, ["--listen", "127.0.0.1:0", "--data", data, "--www", www], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  // Logs (tracing writes to stdout) are kept for diagnostics.
  let stderr = "";
  let stdout = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.stdout.on("data", (d) => (stdout += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const ws = await within(
    new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = out.match(/listening on (ws:\/\/[0-9.:]+)/);
        if (m) resolve(m[1]);
      });
      exited.then(({ code, signal }) => reject(new Error(`holdfast-server exited (${code ?? signal}): ${stderr}`)));
    }),
    "holdfast-server to listen",
  );
  let stopped;
  return {
    ws,
    http: ws.replace(/^ws:/, "http:"),
    stderr: () => stderr,
    stdout: () => stdout,
    /** SIGINT (graceful: in-flight commits finish), then remove the data. */
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
        const r = await within(exited, "holdfast-server to exit").catch((e) => {
          child.kill("SIGKILL");
          throw e;
        });
        rmSync(data, { recursive: true, force: true });
        return r;
      })();
      return stopped;
    },
  };
}

// ---------------------------------------------------------------- browser

/** Launch headless Chromium (playwright-core gives it a fresh user-data-dir). */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/setup.sh browser installs it`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Open the test page in a NEW browser context (its own IndexedDB, like a
 * separate device) and wait until `window.hf` is there. The page's console
 * errors and uncaught exceptions are collected in `page.hfErrors`.
 */
export async function openPage(browser, base) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.hfErrors = [];
  page.on("pageerror", (e) => page.hfErrors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") page.hfErrors.push(`console.error: ${m.text()}`);
    if (process.env.HOLDFAST_E2E_CONSOLE) console.log(`[page ${m.type()}] ${m.text()}`);
  });
  await page.goto(`${base}/tests/e2e/page.html`);
  await waitIn(page, () => window.hfReady === true, undefined, "the test page to load holdfast");
  return page;
}

/** Run `fn(arg)` in the page (it may use `window.hf`), bounded by a timeout. */
export function call(page, fn, arg, what = "a call into the page") {
  return within(page.evaluate(fn, arg), what);
}

/** Wait until `fn(arg)` is truthy in the page; resolves with its value. */
export async function waitIn(page, fn, arg, what = "a condition in the page", ms = TIMEOUT) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout: ms, polling: 20 });
    return await h.jsonValue();
  } catch (e) {
    const errors = page.hfErrors?.length ? `\npage errors:\n  ${page.hfErrors.join("\n  ")}` : "";
    throw new Error(`waiting for ${what}: ${e.message.split("\n")[0]}${errors}`);
  }
}

// ---------------------------------------------------------------- automerge-repo in node

/**
 * automerge-repo's node WebSocket client throws any socket error other than
 * ECONNREFUSED from an event listener, i.e. as an uncaught exception: a
 * server that goes away mid-connection (ECONNRESET, EPIPE) would crash the
 * test process. Those are expected here; the adapter reconnects by itself.
 */
class TolerantClientAdapter extends WebSocketClientAdapter {
  onError = (event) => {
    const code = event?.error?.code;
    if (code && code !== "ECONNRESET" && code !== "EPIPE" && code !== "ECONNREFUSED") throw event.error;
  };
}

/** An automerge-repo 2.5.6 repo (no storage) syncing with `url`. */
export function automergeClient(url) {
  return new Repo({ network: [new TolerantClientAdapter(url)] });
}

/** Attach an error listener to every socket of a `ws` server: a browser
 * context closed mid-connection makes the socket emit ECONNRESET, which
 * without a listener is an uncaught exception. */
export function tolerateSocketErrors(wss) {
  wss.on("connection", (socket) => socket.on("error", () => {}));
  wss.on("error", () => {});
}

/**
 * An automerge-repo document as plain JSON. Strings that are not
 * collaborative text (holdfast writes a plain assignment as a scalar string,
 * automerge 3 JS shows those as `ImmutableString`) become plain strings.
 */
export function plain(doc) {
  return doc === undefined ? undefined : JSON.parse(JSON.stringify(doc));
}

/** Resolve with `plain(handle.doc())` once `pred` holds of it, checking on
 * every change event. */
export function docCondition(handle, pred, what) {
  return within(
    new Promise((resolve) => {
      const check = () => {
        const d = plain(handle.doc());
        if (d && pred(d)) {
          handle.off("change", check);
          resolve(d);
        }
      };
      handle.on("change", check);
      check();
    }),
    what,
  );
}

/**
 * Retry `f` until it resolves truthy: for asking a server for something
 * that another party is pushing to it right now (a find answered
 * doc-unavailable before the push arrived). Each attempt is a real
 * round trip, so this waits on the server, not on a clock.
 */
export async function eventually(what, f, ms = TIMEOUT) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 50)); // poll interval between round trips
  }
}
