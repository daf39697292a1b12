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
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CONSOLE_KEPT = 200;
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

/** mulberry32: a small seeded PRNG, uniform in [0, 1) (the crash tests'
 * kill delays, replayable from a printed seed). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

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
 * `args`: more command-line arguments (e.g. `--auth-secret-file F`).
 * Resolves once it listens: `{ ws, http, stop() }`.
 */
export async function startServer({ www = ROOT, args = [], listen = "127.0.0.1:0" } = {}) {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(`${SERVER_BIN} is missing: run cargo build -p holdfast-server (make test does)`);
  }
  if (!existsSync(join(ROOT, "pkg", "wasm", "holdfast_bg.wasm"))) {
    throw new Error("pkg/wasm/ is missing: run scripts/build-pkg.sh --dev (make test does)");
  }
  const data = mkdtempSync(join(tmpdir(), "holdfast-e2e-"));
  // On PostgreSQL (`--postgres`) there is no data directory.
  const storage = args.includes("--postgres") ? [] : ["--data", data];
  const child = spawn(SERVER_BIN, ["--listen", listen, ...storage, "--www", www, ...args], {
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
    pid: child.pid,
    stderr: () => stderr,
    stdout: () => stdout,
    /** SIGKILL, at once (no commit finishes); resolves once it exited. */
    kill() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        const r = await within(exited, "holdfast-server to die");
        rmSync(data, { recursive: true, force: true });
        return r;
      })();
      return stopped;
    },
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

// ---------------------------------------------------------------- PostgreSQL

// startPostgres, freePort: scripts/postgres.mjs (make bench uses them too).
export { startPostgres, freePort } from "../../scripts/postgres.mjs";

// ---------------------------------------------------------------- browser

/**
 * The demo site (`www/` next to a copy of `pkg/`), as `make demo` serves it:
 * `$CARGO_TARGET_DIR/demo-site` (assembled by `HOLDFAST_DEMO_BUILD_ONLY=1
 * scripts/demo.sh`, with the release wasm) if it exists and its app files
 * are the same as `www/` and `pkg/` now (a stale copy would test old app
 * code); else the same site assembled here into a temporary directory from
 * `www/` and `pkg/` with the dev-built `pkg/wasm/` (copied, not linked), so
 * that `make test` does not need the slow release build.
 * Resolves `{ dir, kind: "demo-site" | "assembled", cleanup() }`.
 */
export function demoSite() {
  const built = join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "demo-site");
  const same = (a, b) => existsSync(a) && existsSync(b) && readFileSync(a).equals(readFileSync(b));
  const www = join(ROOT, "www");
  const appFiles = readdirSync(www).filter((f) => f !== "README.md" && statSync(join(www, f)).isFile());
  const fresh =
    existsSync(join(built, "pkg", "wasm", "holdfast_bg.wasm")) &&
    appFiles.every((f) => same(join(www, f), join(built, f))) &&
    ["index.js", "draft.js", "tabs.js", "share.js"].every((f) => same(join(ROOT, "pkg", f), join(built, "pkg", f)));
  if (fresh) return { dir: built, kind: "demo-site", cleanup() {} };
  if (!existsSync(join(ROOT, "pkg", "wasm", "holdfast_bg.wasm"))) {
    throw new Error("pkg/wasm/ is missing: run scripts/build-pkg.sh --dev (make test does)");
  }
  // The same steps as scripts/demo.sh.
  const dir = mkdtempSync(join(tmpdir(), "holdfast-demo-site-"));
  cpSync(www, dir, { recursive: true });
  rmSync(join(dir, "README.md"), { force: true });
  mkdirSync(join(dir, "pkg"));
  for (const f of ["index.js", "draft.js", "tabs.js", "share.js", "index.d.ts", "package.json"]) cpSync(join(ROOT, "pkg", f), join(dir, "pkg", f));
  cpSync(join(ROOT, "pkg", "wasm"), join(dir, "pkg", "wasm"), { recursive: true });
  return { dir, kind: "assembled", cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Open the demo app in a NEW browser context (a separate device) at
 * `${base}/${query}` and wait until it is ready (`body[data-ready=true]`).
 * Page errors are collected in `page.hfErrors` as in openPage.
 */
export async function openDemo(browser, base, query = "") {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
  const page = await context.newPage();
  collectErrors(page);
  await gotoDemo(page, `${base}/${query}`);
  return page;
}

/** Navigate `page` to the demo app at `url` and wait until it is ready. */
export async function gotoDemo(page, url) {
  await page.goto(url);
  await waitIn(page, () => document.body.dataset.ready === "true", undefined, `the demo app at ${url} to be ready`);
}

function collectErrors(page) {
  page.hfErrors = [];
  page.hfConsole = []; // the last CONSOLE_KEPT console lines, for diagnostics
  page.on("pageerror", (e) => page.hfErrors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    page.hfConsole.push(`[${m.type()}] ${m.text()}`);
    if (page.hfConsole.length > CONSOLE_KEPT) page.hfConsole.shift();
    if (m.type() === "error") page.hfErrors.push(`console.error: ${m.text()}`);
    if (process.env.HOLDFAST_E2E_CONSOLE) console.log(`[page ${m.type()}] ${m.text()}`);
  });
}

/**
 * Launch /usr/bin/chromium ourselves (not through playwright's launcher) on
 * `userDataDir`, with remote debugging on a free port, and connect to it
 * with connectOverCDP: we own the browser's pid and can SIGKILL it. The
 * browser is the leader of its own process group (detached), so that its
 * children can be awaited (and, if any lingers, killed) after a kill.
 * Resolves `{ browser, context, pid, exited, kill() }`: `context` is the
 * default (persistent, on-disk) context; contexts made with newContext()
 * would keep IndexedDB in memory.
 */
export async function launchOwnedChromium(userDataDir) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/setup.sh browser installs it`);
  // A previous (killed) instance leaves its port file behind.
  rmSync(join(userDataDir, "DevToolsActivePort"), { force: true });
  const child = spawn(CHROMIUM, [...CHROMIUM_ARGS, "--remote-debugging-port=0", `--user-data-dir=${userDataDir}`, "about:blank"], {
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  let stderr = "";
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const endpoint = await within(
    new Promise((resolve, reject) => {
      child.stderr.on("data", (d) => {
        stderr += d;
        const m = stderr.match(/DevTools listening on (ws:\/\/\S+)/);
        if (m) resolve(m[1]);
      });
      exited.then(({ code, signal }) => reject(new Error(`chromium exited (${code ?? signal}) before listening: ${stderr}`)));
    }),
    "chromium to listen for DevTools",
  );
  child.stderr.resume(); // keep draining
  const browser = await within(chromium.connectOverCDP(endpoint), "connectOverCDP");
  const pid = child.pid;
  return {
    browser,
    context: browser.contexts()[0],
    pid,
    exited,
    stderr: () => stderr,
    /**
     * SIGKILL the browser process, then at once every other process of its
     * group (renderers, the GPU process, and the storage service: Chromium
     * runs IndexedDB's backend in a utility process, which would otherwise
     * get to finish in-flight writes after the browser died). Resolves once
     * they are all gone.
     */
    async kill() {
      for (const target of [pid, -pid]) {
        try {
          process.kill(target, "SIGKILL");
        } catch (e) {
          if (e.code !== "ESRCH") throw e;
        }
      }
      const r = await within(exited, "the killed browser to exit");
      await groupGone(pid);
      return r;
    },
    /** Close it gracefully (CDP Browser.close: playwright's browser.close()
     * only disconnects from a browser it did not launch), then wait for the
     * group. */
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        await browser
          .newBrowserCDPSession()
          .then((s) => s.send("Browser.close"))
          .catch(() => {});
      }
      await within(exited, "chromium to exit").catch(() => process.kill(pid, "SIGKILL"));
      await groupGone(pid);
    },
  };
}

/** The live (not zombie) processes of process group `pgid`, from /proc. */
function groupMembers(pgid) {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z" && state !== "X") out.push(Number(name));
  }
  return out;
}

/** Wait until no live process of process group `pgid` (one we started
 * detached) is left (zombies wait for init to reap them: they hold no
 * files); after 5 s, SIGKILL the stragglers. */
async function groupGone(pgid) {
  const end = Date.now() + 5_000;
  while (groupMembers(pgid).length > 0) {
    if (Date.now() > end) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 10)); // polling for the children to exit
  }
}

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
  return openPageIn(await context.newPage(), base);
}

/** Load the test page into an existing `page` (e.g. of an owned browser's
 * persistent context) and wait until `window.hf` is there. */
export async function openPageIn(page, base) {
  if (!page.hfErrors) collectErrors(page);
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

/** An automerge-repo 2.5.6 repo (no storage) syncing with `url`; its
 * network adapter is `repo.adapter` (for diagnostics). */
export function automergeClient(url) {
  const adapter = new TolerantClientAdapter(url);
  const repo = new Repo({ network: [adapter] });
  repo.adapter = adapter;
  return repo;
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
export function docCondition(handle, pred, what, ms = TIMEOUT) {
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
    ms,
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
