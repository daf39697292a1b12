// make bench: holdfast against automerge-repo 2.5.6, the same workloads in
// the same run on the same machine (bench/README.md lists them and the page
// contract). Prints one table (median (min–max) over BENCH_REPS repetitions,
// a ratio column holdfast / automerge-repo, the issue's target where there
// is one) and writes every raw figure to bench/results/latest.json and the
// table to bench/results/latest.md.
//
// The two systems alternate inside each repetition, so that a noisy moment
// of the machine falls on both. Browser workloads run in one persistent
// Chromium profile (on-disk IndexedDB: a context made with newContext()
// keeps IndexedDB in memory) with a fresh database per system and workload.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { decode as decodeCbor } from "cbor-x";
import { chromium } from "playwright-core";
import { buildSite, PKG_WASM, SITE } from "./build.mjs";

const BENCH = new URL(".", import.meta.url).pathname;
const ROOT = join(BENCH, "..");
const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");
process.env.HOLDFAST_SERVER_BIN ??= join(TARGET, "release", "holdfast-server");
const { startServer, launchOwnedChromium, within, CHROMIUM } = await import("../tests/e2e/harness.mjs");

const REPS = Number(process.env.BENCH_REPS ?? 5);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",").map((s) => s.trim().toUpperCase())) : null;
const W7_SECONDS = Number(process.env.BENCH_W7_SECONDS ?? 10);
const W7_CLIENTS = (process.env.BENCH_W7_CLIENTS ?? "10,100,1000").split(",").map(Number);
// W7n (bench/w7-nodes.mjs): W7 on shards, PostgreSQL and several nodes.
const W7N_CLIENTS = (process.env.BENCH_W7N_CLIENTS ?? "100,1000").split(",").map(Number);
const W9_SECONDS = Number(process.env.BENCH_W9_SECONDS ?? 60);
const W9_REPS = Number(process.env.BENCH_W9_REPS ?? 2);
const W9_SYSTEMS = (process.env.BENCH_W9_SYSTEMS ?? "holdfast").split(",").map((s) => s.trim());
const W9_IDLE = Number(process.env.BENCH_W9_IDLE ?? 1000);
const W9_SPAM_DOCS = Number(process.env.BENCH_W9_SPAM_DOCS ?? 100_000);
const W9_MAX_SECONDS = Number(process.env.BENCH_W9_MAX_SECONDS ?? W9_SECONDS);
const W5B_N = (process.env.BENCH_W5B_N ?? "1000,10000").split(",").map(Number);
const W5B_REPS = Number(process.env.BENCH_W5B_REPS ?? REPS);
// W5's targets (issue 13): messages each way ≤ 2 × 10 changed + 4.
const W5_MAX_MESSAGES = 2 * 10 + 4;
const SYSTEMS = ["holdfast", "automerge"];
const LONG = 180_000; // bound of one page call (a workload), reached only on a hang

const runs = (w) => !ONLY || ONLY.has(w);
// W7 and W9 drive native clients against the servers: without a workload of
// the pages, neither the site nor Chromium is needed.
const BROWSER = ["W1", "W2", "W3", "W4", "W5", "W5B", "W6", "W8", "W10", "D1"].some(runs);
const log = (...a) => console.error("bench:", ...a);

// ---------------------------------------------------------------- what is measured

/** The newest source of the crates at `dirs` (each one's Cargo.toml and
 * the `.rs` files under its src/): `{ mtimeMs, file }`. */
function newestSource(dirs) {
  const newest = { mtimeMs: 0, file: null };
  const see = (p) => {
    const m = statSync(p).mtimeMs;
    if (m > newest.mtimeMs) Object.assign(newest, { mtimeMs: m, file: p });
  };
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".rs")) see(p);
    }
  };
  for (const d of dirs) {
    if (existsSync(join(d, "Cargo.toml"))) see(join(d, "Cargo.toml"));
    if (existsSync(join(d, "src"))) walk(join(d, "src"));
  }
  return newest;
}

/** The builds this run measures: holdfast-server ($HOLDFAST_SERVER_BIN,
 * release) and the wasm package (PKG_WASM, release: build.mjs refuses a
 * --dev build). Warns when a source file is newer than the build (measuring
 * old code); `stale` names it. */
function builds() {
  const crate = (c) => join(ROOT, "crates", c);
  const check = (what, path, sources) => {
    if (!existsSync(path)) throw new Error(`${path} is missing (make bench builds it)`);
    const built = statSync(path).mtimeMs;
    const src = newestSource(sources);
    const b = { path, built: new Date(built).toISOString() };
    if (src.mtimeMs > built) {
      b.stale = src.file;
      log(`WARNING: ${what} ${path} is older than ${src.file}: rebuild it (make bench does) or the run measures old code`);
    }
    return b;
  };
  const b = {
    server: check("holdfast-server", process.env.HOLDFAST_SERVER_BIN, ["holdfast-server", "holdfast-core", "holdfast-log", "holdfast-pg"].map(crate)),
  };
  if (BROWSER) b.wasm = check("the wasm package", join(PKG_WASM, "holdfast_bg.wasm"), [ROOT, crate("holdfast-core")]);
  if (runs("W7") || runs("W7N") || runs("W9")) b.load = check("holdfast-load", join(TARGET, "release", "holdfast-load"), [join(BENCH, "load"), crate("holdfast-core")]);
  return b;
}

// ---------------------------------------------------------------- statistics

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

// ---------------------------------------------------------------- the browser

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

async function openBenchPage(context, base, system) {
  const page = await context.newPage();
  page.benchErrors = [];
  page.on("pageerror", (e) => page.benchErrors.push(e.message));
  page.on("console", (m) => m.type() === "error" && page.benchErrors.push(m.text()));
  await gotoBench(page, `${base}/${system}/`);
  return page;
}

async function gotoBench(page, url) {
  await page.goto(url ?? page.url());
  await page.waitForFunction(() => window.bench?.ready === true, undefined, { timeout: 30_000 }).catch((e) => {
    throw new Error(`the bench page ${page.url()} did not load: ${e.message.split("\n")[0]} ${page.benchErrors.join("; ")}`);
  });
}

/** Call `bench[method](...args)` in the page. */
function call(page, method, ...args) {
  return callWithin(LONG, page, method, ...args);
}

/** `call`, bounded by `ms`. */
function callWithin(ms, page, method, ...args) {
  return within(
    page.evaluate(([m, a]) => window.bench[m](...a), [method, args]),
    `${page.url()} bench.${method}`,
    ms,
  ).catch((e) => {
    throw new Error(`${e.message}${page.benchErrors.length ? `\n  page errors: ${page.benchErrors.join("\n  ")}` : ""}`);
  });
}

/** Close `page` (and so its repo's database connection), then delete the
 * IndexedDB database `db` from a fresh page of the same origin, so that
 * later workloads start from an empty profile. */
async function dropDb(context, base, system, page, db) {
  await page.close();
  const p = await context.newPage();
  try {
    await p.goto(`${base}/${system}/`);
    await within(
      p.evaluate(
        (name) =>
          new Promise((resolve, reject) => {
            const r = indexedDB.deleteDatabase(name);
            r.onsuccess = () => resolve();
            r.onerror = () => reject(r.error);
          }),
        db,
      ),
      `deleting IndexedDB database ${db}`,
    );
  } finally {
    await p.close();
  }
}

// ---------------------------------------------------------------- workloads

let dbSeq = 0;
const freshDb = (system, w) => `bench-${system}-${w}-${Date.now()}-${dbSeq++}`;

/** W1 and W2 in one page per system and repetition. */
async function w1w2(context, base, system, rep, out) {
  const page = await openBenchPage(context, base, system);
  const db = freshDb(system, "w12");
  const { durability } = await call(page, "open", { db, sync: null });
  if (runs("W1")) {
    const { ms, latencies } = await call(page, "w1", 500);
    out.W1[system].push({ rate: (500 / ms) * 1000, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), durability });
  }
  if (runs("W2")) {
    const { ms } = await call(page, "w2", 5000);
    out.W2[system].push({ rate: (5000 / ms) * 1000 });
  }
  await dropDb(context, base, system, page, db);
  log(`${system} rep ${rep}: W1 ${fmt(out.W1[system].at(-1)?.rate)}/s, W2 ${fmt(out.W2[system].at(-1)?.rate)}/s`);
}

/** W3 and W4: prepared once per system, then REPS × (reload, open, load). */
async function w3w4(context, base, system, out) {
  const page = await openBenchPage(context, base, system);
  const db = freshDb(system, "w34");
  await call(page, "open", { db, sync: null });
  let w3url, w4urls;
  if (runs("W3")) {
    const t = performance.now();
    ({ url: w3url } = await call(page, "w3Prepare", 10_000));
    log(`${system}: W3 document of 10,000 changes stored in ${fmt(performance.now() - t)} ms`);
  }
  if (runs("W3")) out.W3storage[system] = await call(page, "idbStats");
  if (runs("W4")) ({ urls: w4urls } = await call(page, "w4Prepare", 1000));
  // Repetition -1 is a warm-up, not recorded: the first IndexedDB read of a
  // freshly started browser is several times slower for both systems.
  for (let rep = -1; rep < REPS; rep++) {
    const keep = (w, x) => rep >= 0 && out[w][system].push(x);
    if (runs("W3")) {
      await gotoBench(page);
      await call(page, "open", { db, sync: null });
      const r = await call(page, "w3Load", w3url);
      if (r.length !== 10_000) throw new Error(`${system} W3: loaded ${r.length} items, not 10000`);
      keep("W3", { ms: r.ms, findMs: r.findMs });
    }
    if (runs("W4")) {
      await gotoBench(page);
      await call(page, "open", { db, sync: null });
      keep("W4", { ms: (await call(page, "w4Load", w4urls)).ms });
    }
    if (rep >= 0) log(`${system} rep ${rep}: W3 ${fmt(out.W3[system].at(-1)?.ms)} ms, W4 ${fmt(out.W4[system].at(-1)?.ms)} ms`);
  }
  await dropDb(context, base, system, page, db);
}

/** The `type` of a WebSocket frame: both systems send one CBOR map per
 * frame (automerge-repo's network protocol; holdfast adds holdfast-resume
 * and holdfast-changed). */
function frameType(payload) {
  try {
    const m = decodeCbor(typeof payload === "string" ? Buffer.from(payload) : payload);
    return typeof m?.type === "string" ? m.type : "(no type)";
  } catch {
    return "(not CBOR)";
  }
}

/** Count WebSocket frames, their bytes and their message types on every
 * WebSocket of the page (over navigations), from `start()` until no frame
 * has passed for `quietMs`. A frame is a message: every frame counts, the
 * handshake (join / peer) included. */
function trafficMeter(page) {
  const fresh = () => ({ sent: 0, received: 0, sentBytes: 0, receivedBytes: 0, types: { sent: {}, received: {} } });
  const t = { ...fresh(), counting: false, last: 0 };
  const size = (p) => (typeof p === "string" ? Buffer.byteLength(p) : p.length);
  const frame = (dir, payload) => {
    if (!t.counting) return;
    t[dir]++;
    t[`${dir}Bytes`] += size(payload);
    const type = frameType(payload);
    t.types[dir][type] = (t.types[dir][type] ?? 0) + 1;
    t.last = performance.now();
  };
  page.on("websocket", (ws) => {
    ws.on("framesent", ({ payload }) => frame("sent", payload));
    ws.on("framereceived", ({ payload }) => frame("received", payload));
  });
  const snapshot = () => ({
    sent: t.sent,
    received: t.received,
    sentBytes: t.sentBytes,
    receivedBytes: t.receivedBytes,
    types: structuredClone(t.types),
  });
  return {
    start() {
      Object.assign(t, fresh(), { counting: true, last: performance.now() });
    },
    /** The counts so far (counting goes on). */
    snapshot,
    /** Resolves with the counts once `quietMs` passed without a frame
     * (throws after `maxMs`). */
    async quiet(what, quietMs = 1000, maxMs = 60_000) {
      const end = performance.now() + maxMs;
      while (performance.now() - t.last < quietMs) {
        if (performance.now() > end) throw new Error(`${what}: the connection never went quiet`);
        await new Promise((r) => setTimeout(r, 50)); // the quiet window is measured on the frame clock
      }
      t.counting = false;
      return snapshot();
    },
  };
}

const typesLine = (types) =>
  ["sent", "received"].map((d) => `${d} ${Object.entries(types[d]).map(([k, v]) => `${k} ${v}`).join(", ") || "nothing"}`).join("; ");

/** `{ url: heads }` → `{ documentId: heads }` (what the automerge-repo server's wait takes). */
const byId = (heads) => Object.fromEntries(Object.entries(heads).map(([u, h]) => [u.replace(/^automerge:/, ""), h]));

/** W10: two tabs of one profile on one database, no server: tab A makes
 * 100 changes one at a time; for each, the time from A's change call (and,
 * for holdfast, from its durable report) to the `change` event in tab B.
 * automerge-repo's tabs use its BroadcastChannel network adapter: B hears
 * of a change before A has saved it. */
async function w10(context, base, system, rep, out) {
  const [a, b] = [await openBenchPage(context, base, system), await openBenchPage(context, base, system)];
  const db = freshDb(system, "w10");
  const open = system === "holdfast" ? "open" : "w10open";
  await call(a, open, { db, sync: null });
  await call(b, open, { db, sync: null });
  const url = await call(a, "w10create");
  await call(b, "w10listen", url);
  const fromChange = [];
  const fromDurable = [];
  for (let i = 1; i <= 100; i++) {
    const { start, durable } = await call(a, "w10change", url, i);
    const h = await within(
      b.waitForFunction((i) => window.bench.w10seen(i), i, { polling: 1, timeout: 10_000 }),
      `W10: tab B to see change ${i}`,
    );
    const seen = await h.jsonValue();
    fromChange.push(seen - start);
    fromDurable.push(seen - durable);
  }
  await b.close();
  await dropDb(context, base, system, a, db);
  const q = (xs, p) => quantile(xs, p);
  out.W10[system].push({ p50: q(fromChange, 0.5), p99: q(fromChange, 0.99), durableP50: q(fromDurable, 0.5), durableP99: q(fromDurable, 0.99) });
  log(`${system} rep ${rep}: W10 change in A -> event in B p50 ${fmt(q(fromChange, 0.5), 1)} ms, p99 ${fmt(q(fromChange, 0.99), 1)} ms`);
}

/** W5: 1,000 documents on the server; offline, change 10, reconnect. */
async function w5(context, base, system, rep, out) {
  const dir = mkdtempSync(join(tmpdir(), `bench-w5-${system}-`));
  const { server, syncUrl } = await syncServer(system, dir);
  try {
    const page = await openBenchPage(context, base, system);
    const meter = trafficMeter(page);
    const db = freshDb(system, "w5");
    await call(page, "open", { db, sync: syncUrl });
    const { urls } = await call(page, "w5Prepare", 1000);
    // Everything is on the server before the disconnect.
    if (system === "holdfast") await call(page, "w5WaitServer", urls);
    else await server.wait(byId((await call(page, "w5Heads", urls)).heads));
    await call(page, "disconnect");
    const changed = urls.slice(0, 10);
    const { heads } = await call(page, "w5Change", changed);
    meter.start();
    const t0 = performance.now();
    await call(page, "reconnect");
    if (system === "holdfast") await call(page, "w5WaitServer", changed);
    else await server.wait(byId(heads));
    const ms = performance.now() - t0;
    const traffic = await meter.quiet("W5");
    out.W5[system].push({ ms, ...traffic });
    log(`${system} rep ${rep}: W5 ${fmt(ms)} ms, sent ${traffic.sentBytes} B / ${traffic.sent} msgs, received ${traffic.receivedBytes} B / ${traffic.received} msgs (${typesLine(traffic.types)})`);
    if (system === "holdfast" && !traffic.types.sent["holdfast-resume"]) {
      throw new Error(`W5: the holdfast client sent no holdfast-resume: the collection exchange was not negotiated (is ${process.env.HOLDFAST_SERVER_BIN} and pkg/wasm/ freshly built?)`);
    }
    await dropDb(context, base, system, page, db);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The sync server a W5/W5b run syncs with: a fresh holdfast-server
 * ($HOLDFAST_SERVER_BIN) or automerge-repo's node server, on its own data
 * directory. */
async function syncServer(system, dir) {
  const server = system === "holdfast" ? await startServer({ www: SITE }) : await (await import("./w7.mjs")).startAmServer({ dir });
  return { server, syncUrl: server.ws ?? server.url };
}

/** W5b at `n` documents: this device (page A) holds `n` documents, all on
 * the server, and closes (holdfast: `await repo.close()`; automerge-repo:
 * `await repo.shutdown()`, i.e. disconnect and flush), then leaves the page.
 * Per repetition: another device (page B, its own database) finds 10 of the
 * documents on the server, changes them, and waits until the server has the
 * changes (holdfast: `whenSynced`; automerge-repo: the server's copy has the
 * heads, flushed), then closes; page A is loaded again (a cold start on the
 * same IndexedDB database) and `w5bResume` times, from opening the repo,
 * until the 10 are durable here with the other device's change. Traffic is
 * page A's WebSocket frames over that window (and until 1 s quiet). Each
 * repetition changes 10 other documents. */
async function w5b(context, base, system, n, out) {
  const dir = mkdtempSync(join(tmpdir(), `bench-w5b-${system}-`));
  const { server, syncUrl } = await syncServer(system, dir);
  const res = (out.W5b[n] ??= { holdfast: [], automerge: [] });
  try {
    const page = await openBenchPage(context, base, system);
    const meter = trafficMeter(page);
    const db = freshDb(system, `w5b-${n}`);
    await call(page, "open", { db, sync: syncUrl });
    // Bounds of one step, for a hang: automerge-repo takes ~40 ms per
    // document held to put them on its server and to resume.
    const bound = Math.max(LONG, n * 100);
    // In batches of 1,000, each on the server before the next: 10,000 new
    // documents at once overwhelm automerge-repo's server (its handles time
    // out after 60 s waiting to be ready and the rejection ends the process).
    let t = performance.now();
    const urls = [];
    for (let i = 0; i < n; i += 1000) {
      const { urls: batch } = await call(page, "w5Prepare", Math.min(1000, n - i));
      if (system === "holdfast") await call(page, "w5WaitServer", batch);
      else await server.wait(byId((await call(page, "w5Heads", batch)).heads), LONG);
      urls.push(...batch);
    }
    const prepareMs = performance.now() - t;
    await callWithin(bound, page, "close");
    await page.goto("about:blank");
    log(`${system}: W5b ${n} documents on the server in ${fmt(prepareMs)} ms`);
    for (let rep = 0; rep < W5B_REPS; rep++) {
      const changed = urls.slice(rep * 10, rep * 10 + 10);
      // The other device.
      const other = await openBenchPage(context, base, system);
      const otherDb = freshDb(system, "w5b-other");
      await call(other, "open", { db: otherDb, sync: syncUrl });
      const { heads } = await call(other, "w5bChange", changed);
      if (system === "automerge") await server.wait(byId(heads));
      await call(other, "close");
      await dropDb(context, base, system, other, otherDb);
      // This device, after the reload.
      await gotoBench(page, `${base}/${system}/`);
      await call(page, "warm");
      meter.start();
      t = performance.now();
      const r = await callWithin(bound, page, "w5bResume", { db, sync: syncUrl, urls, heads });
      const window = meter.snapshot();
      const wallMs = performance.now() - t;
      const quiet = await meter.quiet(`W5b ${system} ${n}`, 1000, bound);
      out.W5b[n][system].push({ ...r, wallMs, ...window, quiet });
      log(
        `${system} rep ${rep}: W5b n=${n} ${fmt(r.ms)} ms (open ${fmt(r.openMs)} ms${r.findMs ? `, find all ${fmt(r.findMs)} ms` : ""}), ` +
          `sent ${window.sentBytes} B / ${window.sent} msgs, received ${window.receivedBytes} B / ${window.received} msgs (${typesLine(window.types)}); ` +
          `until quiet: sent ${quiet.sentBytes} B / ${quiet.sent}, received ${quiet.receivedBytes} B / ${quiet.received}`,
      );
      await callWithin(bound, page, "close");
      await page.goto("about:blank");
    }
    await dropDb(context, base, system, page, db);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** W6: the library alone (site/size, minified by esbuild) and its wasm. */
function w6(out) {
  const weigh = (f) => {
    const b = readFileSync(join(SITE, "size", f));
    return { raw: b.length, gzip: gzipSync(b, { level: 9 }).length };
  };
  out.W6 = {
    holdfast: { js: weigh("holdfast.js"), wasm: weigh("wasm/holdfast_bg.wasm"), react: weigh("holdfast-react.js") },
    automerge: { js: weigh("automerge.js"), wasm: weigh("automerge.wasm") },
  };
}

/** D1: n changes, SIGKILL the browser right after the last is reported,
 * relaunch on the same profile, count the survivors. */
async function d1(base, system, trial, out) {
  const n = 200;
  const profile = mkdtempSync(join(tmpdir(), `bench-d1-${system}-`));
  try {
    let owned = await launchOwnedChromium(profile);
    let url = null;
    let reported = 0;
    let killed;
    const page = await owned.context.newPage();
    await page.exposeBinding("benchStarted", (_, u) => {
      url = u;
    });
    await page.exposeBinding("benchReported", async (_, count) => {
      reported = count;
      killed ??= owned.kill();
      await killed;
    });
    page.benchErrors = [];
    await gotoBench(page, `${base}/${system}/`);
    await call(page, "open", { db: "d1", sync: null });
    await page.evaluate((k) => window.bench.d1Start(k), n).catch(() => {}); // ends with the kill
    await within(killed ?? Promise.reject(new Error(`D1 ${system}: the page never reported its changes`)), "the kill");
    owned = await launchOwnedChromium(profile);
    const again = await owned.context.newPage();
    again.benchErrors = [];
    await gotoBench(again, `${base}/${system}/`);
    await call(again, "open", { db: "d1", sync: null });
    const { count, error } = await call(again, "d1Count", url);
    await owned.close();
    out.D1[system].push({ reported, survived: count, lost: Math.max(0, reported - count), error });
    log(`${system} trial ${trial}: D1 reported ${reported}, survived ${count}${error ? ` (${error})` : ""}`);
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the table

function fmt(x, digits) {
  if (x === undefined || x === null || Number.isNaN(x)) return "–";
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

function summary(xs) {
  if (!xs?.length) return null;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

const cell = (s, unit = "") => (s ? `${fmt(s.median)}${unit} (${fmt(s.min)}–${fmt(s.max)})` : "–");

/** Rows: [workload, metric, holdfast summary, automerge summary, better ("higher"|"lower"), target ratio]. */
function rows(out) {
  const r = [];
  const pick = (w, k) => SYSTEMS.map((s) => summary(out[w]?.[s]?.map((x) => x[k])));
  const row = (w, metric, k, better, target, unit) => {
    const [h, a] = pick(w, k);
    if (h || a) r.push({ w, metric, h, a, better, target, unit });
  };
  row("W1", "durable changes/s (change, await durable)", "rate", "higher", 1.0);
  row("W1", "p50 latency ms", "p50", "lower");
  row("W1", "p99 latency ms", "p99", "lower");
  row("W2", "5,000 un-awaited changes: changes/s", "rate", "higher", 2.0);
  row("W3", "cold load of 10,000-change doc: ms", "ms", "lower", 0.5);
  row("W3", "of which find (the rest: reading doc())", "findMs", "lower");
  if (out.W3storage) {
    const one = (k) => SYSTEMS.map((s) => (out.W3storage[s] ? summary([out.W3storage[s][k]]) : null));
    const [hr, ar] = one("records");
    r.push({ w: "W3", metric: "IndexedDB records", h: hr, a: ar, better: "lower" });
    const [hb, ab] = one("bytes");
    r.push({ w: "W3", metric: "IndexedDB bytes", h: hb, a: ab, better: "lower" });
  }
  row("W4", "find 1,000 docs after reload: ms", "ms", "lower", 0.25);
  row("W10", "two tabs: change in A -> change event in B, p50 ms", "p50", "lower");
  row("W10", "p99 ms", "p99", "lower");
  row("W10", "from durable in A: p50 ms (automerge-repo: B may hear before A saved)", "durableP50", "lower");
  row("W10", "from durable in A: p99 ms", "durableP99", "lower");
  row("W5", "reconnect, 10 of 1,000 changed: ms to server durable", "ms", "lower", 0.2);
  row("W5", "bytes sent", "sentBytes", "lower", 0.05);
  row("W5", "bytes received", "receivedBytes", "lower", 1.0);
  row("W5", "messages sent", "sent", "lower", { max: W5_MAX_MESSAGES });
  row("W5", "messages received", "received", "lower", { max: W5_MAX_MESSAGES });
  for (const n of Object.keys(out.W5b ?? {})) {
    const get = (k) => SYSTEMS.map((s) => summary(out.W5b[n][s]?.map(k)));
    const add = (metric, k) => {
      const [h, a] = get(k);
      if (h || a) r.push({ w: "W5b", metric: `${Number(n).toLocaleString("en-US")} held, 10 changed elsewhere: ${metric}`, h, a, better: "lower" });
    };
    add("ms from open to the 10 durable", (x) => x.ms);
    add("bytes sent", (x) => x.sentBytes);
    add("bytes received", (x) => x.receivedBytes);
    add("messages sent", (x) => x.sent);
    add("messages received", (x) => x.received);
  }
  if (out.W6) {
    const one = (f) => SYSTEMS.map((s) => summary([f(out.W6[s])]));
    const add = (metric, f, target) => {
      const [h, a] = one(f);
      r.push({ w: "W6", metric, h, a, better: "lower", target });
    };
    add("JS bytes (minified)", (x) => x.js.raw);
    add("JS bytes gzip -9", (x) => x.js.gzip);
    add("wasm bytes", (x) => x.wasm.raw);
    add("wasm bytes gzip -9", (x) => x.wasm.gzip);
    add("total gzip -9", (x) => x.js.gzip + x.wasm.gzip, 0.5);
    const react = out.W6.holdfast.react;
    if (react) r.push({ w: "W6", metric: "holdfast/react alone, gzip -9 (React external; not in the total)", h: summary([react.gzip]), a: null, better: "lower" });
  }
  for (const n of Object.keys(out.W8 ?? {})) {
    const get = (k) => SYSTEMS.map((s) => summary(out.W8[n][s]?.map((x) => x[k])));
    const k = Number(n).toLocaleString("en-US");
    const [h, a] = get("rssPerDoc");
    r.push({ w: "W8", metric: `${k} docs open: renderer memory per doc, bytes`, h, a, better: "lower", target: 0.5 });
    const [hh, ah] = get("heapPerDoc");
    r.push({ w: "W8", metric: `${k} docs open: JS heap per doc, bytes`, h: hh, a: ah, better: "lower" });
  }
  for (const n of Object.keys(out.W8server ?? {})) {
    const [h, a] = SYSTEMS.map((s) => summary([out.W8server[n][s]?.rssPerDoc].filter((x) => x !== undefined)));
    r.push({ w: "W8", metric: `server, ${Number(n).toLocaleString("en-US")} docs held: resident memory per doc, bytes`, h, a, better: "lower", target: 0.5 });
  }
  for (const n of Object.keys(out.W7?.holdfast ?? {})) {
    const get = (s, f) => {
      const x = out.W7[s]?.[n];
      return x ? f(x) : null;
    };
    const add = (metric, f, better) => {
      const [h, a] = SYSTEMS.map((s) => get(s, f));
      r.push({ w: "W7", metric: `${n} clients: ${metric}`, h, a, better });
    };
    add("acked changes/s (per 2 s window)", (x) => summary(x.rate_windows), "higher");
    add("last / first 2 s window", (x) => summary([x.rate_windows.at(-1) / x.rate_windows[0]]), "higher");
    add("p50 ack ms", (x) => summary([x.p50_ms]), "lower");
    add("p99 ack ms", (x) => summary([x.p99_ms]), "lower");
    add("server peak RSS MB", (x) => summary([x.server_peak_rss_kb / 1024]), "lower");
  }
  for (const [setup, byN] of Object.entries(out.W7N ?? {})) {
    for (const [n, x] of Object.entries(byN)) {
      const add = (metric, v, better) => r.push({ w: "W7n", metric: `${setup}, ${n} clients: ${metric}`, h: summary([v]), a: null, better });
      add("acked changes/s", x.rate, "higher");
      add("p50 ack ms (worst node)", x.p50_ms, "lower");
      add("p99 ack ms (worst node)", x.p99_ms, "lower");
      add("servers' peak RSS MB (sum)", x.rss_kb / 1024, "lower");
    }
  }
  if (out.W9) {
    // Per repetition: an unloaded run and a run under attack (bench/w9.mjs).
    const get = (s, f) => (out.W9[s]?.length ? summary(out.W9[s].map(f).filter((x) => x !== undefined && x !== null)) : null);
    const add = (metric, f, better, target) => {
      const [h, a] = SYSTEMS.map((s) => get(s, f));
      if (h || a) r.push({ w: "W9", metric, h, a, better, target });
    };
    const { clients, intervalMs, idle, spamDocs, rssCapMb, diskSlackMb } = out.W9.config;
    const during = (x) => x.loaded.during_spam ?? x.loaded;
    const k = (n) => n.toLocaleString("en-US");
    add(`${clients} writers (1 change/${intervalMs} ms each), unloaded: p50 ack ms`, (x) => x.unloaded.p50_ms, "lower");
    add("unloaded: p99 ack ms", (x) => x.unloaded.p99_ms, "lower");
    add("unloaded: max ack ms", (x) => x.unloaded.max_ms, "lower");
    add(`+ ${k(idle)} idle + ${k(spamDocs)}-doc spammer, during the spam: p50 ack ms`, (x) => during(x).p50_ms, "lower");
    add("during the spam: p99 ack ms", (x) => during(x).p99_ms, "lower");
    add("during the spam: max ack ms", (x) => during(x).max_ms, "lower");
    add("p99 during the spam / unloaded p99", (x) => x.p99_ratio, "lower", { max: 2 });
    add("under attack: acked changes/s (whole run)", (x) => x.loaded.acks_per_s, "higher");
    add("under attack: server peak RSS MB", (x) => x.loaded.server_peak_rss_kb / 1024, "lower", { max: rssCapMb });
    add("unloaded: data dir MB at the end", (x) => x.unloaded.data_bytes / 2 ** 20, "lower");
    add("under attack: data dir MB more than unloaded", (x) => (x.loaded.data_bytes - x.unloaded.data_bytes) / 2 ** 20, "lower", { max: diskSlackMb });
    add(`spam: requests answered (of ${k(spamDocs)})`, (x) => x.loaded.spam?.answered, "higher");
    add("spam: requests answered/s", (x) => x.loaded.spam?.rate_per_s, "higher");
    add("spam: seconds", (x) => x.loaded.spam?.seconds, "lower");
    add(`idle connections open at the end (of ${k(idle)})`, (x) => x.loaded.idle?.open_at_end, "higher");
    add("documents loaded at the end", (x) => x.loaded.metrics_end?.documents_loaded, "lower");
    add("documents loaded: peak during the run", (x) => (x.loaded.peaks?.documents_loaded || undefined), "lower");
  }
  if (out.D1.holdfast.length || out.D1.automerge.length) {
    const [h, a] = SYSTEMS.map((s) => summary(out.D1[s].map((x) => x.lost)));
    r.push({ w: "D1", metric: "reported changes lost of 200 (per trial)", h, a, better: "lower", target: "zero" });
  }
  return r;
}

function table(out) {
  const lines = [
    "| | metric | holdfast | automerge-repo 2.5.6 | holdfast / automerge-repo | target |",
    "|---|---|---|---|---|---|",
  ];
  const verdicts = [];
  for (const { w, metric, h, a, better, target } of rows(out)) {
    const ratio = h && a && a.median !== 0 ? h.median / a.median : null;
    let t = "";
    if (target === "zero") {
      const ok = out.D1.holdfast.every((x) => x.lost === 0);
      t = `0 in every trial: ${ok ? "met" : "MISSED"}`;
      verdicts.push({ w, metric, target: "0 lost", ok, ratio: null });
    } else if (target?.max !== undefined && h) {
      // An absolute bound on holdfast's figure, in every repetition.
      const ok = h.max <= target.max;
      t = `≤ ${target.max} (every rep): ${ok ? "met" : "MISSED"}`;
      verdicts.push({ w, metric, target: `≤ ${target.max}`, ok, ratio: null, value: h.max });
    } else if (typeof target === "number" && ratio !== null) {
      const ok = better === "higher" ? ratio >= target : ratio <= target;
      t = `${better === "higher" ? "≥" : "≤"} ${fmt(target, target < 0.1 ? 2 : 1)}×: ${ok ? "met" : "MISSED"}`;
      verdicts.push({ w, metric, target: `${target}×`, ok, ratio });
    }
    const D1cell = (s) => (w === "D1" && s ? `${out.D1[s === h ? "holdfast" : "automerge"].map((x) => x.lost).join(", ")}` : null);
    lines.push(`| ${w} | ${metric} | ${D1cell(h) ?? cell(h)} | ${D1cell(a) ?? cell(a)} | ${ratio === null ? "–" : `${fmt(ratio, 2)}×`} | ${t} |`);
  }
  return { text: lines.join("\n"), verdicts };
}

// ---------------------------------------------------------------- main

async function main() {
  const started = Date.now();
  const out = { W1: {}, W2: {}, W3: {}, W4: {}, W5: {}, W10: {}, D1: {} };
  for (const w of Object.keys(out)) for (const s of SYSTEMS) out[w][s] = [];
  out.W5b = {}; // { n: { holdfast: [...], automerge: [...] } }

  if (BROWSER) await buildSite();
  const meta = {
    date: new Date().toISOString(),
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    chromium: BROWSER ? execFileSync(CHROMIUM, ["--version"], { encoding: "utf8" }).trim() : null,
    node: process.version,
    commit: (() => {
      try {
        return execFileSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
      } catch {
        return null;
      }
    })(),
    reps: REPS,
    w5bReps: W5B_REPS,
    w9Reps: W9_REPS,
    command: process.env.BENCH_COMMAND ?? (ONLY ? `BENCH_ONLY=${[...ONLY].join(",")} make bench` : "make bench"),
    builds: builds(),
  };
  log(`${meta.cores} cores, ${meta.chromium ?? "no browser"}, ${REPS} repetitions`);

  // A server for the pages (and nothing else: W5 starts its own).
  const web = BROWSER ? await startServer({ www: SITE }) : null;
  if (web) try {
    const profile = mkdtempSync(join(tmpdir(), "bench-profile-"));
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS });
    try {
      if (runs("W1") || runs("W2")) {
        for (let rep = 0; rep < REPS; rep++) for (const s of SYSTEMS) await w1w2(context, web.http, s, rep, out);
      }
      if (runs("W3") || runs("W4")) {
        out.W3storage = {};
        for (const s of SYSTEMS) await w3w4(context, web.http, s, out);
      }
      if (runs("W5")) {
        for (let rep = 0; rep < REPS; rep++) for (const s of SYSTEMS) await w5(context, web.http, s, rep, out);
      }
      if (runs("W5B")) {
        for (const n of W5B_N) for (const s of SYSTEMS) await w5b(context, web.http, s, n, out);
      }
      if (runs("W10")) {
        for (let rep = 0; rep < REPS; rep++) for (const s of SYSTEMS) await w10(context, web.http, s, rep, out);
      }
      if (runs("W8")) {
        const { runW8 } = await import("./w8.mjs");
        const helpers = { systems: SYSTEMS, openBenchPage, gotoBench, call, dropDb, freshDb, log };
        out.W8 = await runW8(context, web.http, profile, helpers);
      }
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
    if (runs("W6")) w6(out);
    if (runs("D1")) {
      for (let trial = 0; trial < REPS; trial++) for (const s of SYSTEMS) await d1(web.http, s, trial, out);
    }
  } finally {
    await web.stop();
  }
  if (runs("W7")) {
    const { runW7 } = await import("./w7.mjs");
    out.W7 = await runW7({
      clients: W7_CLIENTS,
      seconds: W7_SECONDS,
      holdfastServerBin: process.env.HOLDFAST_SERVER_BIN,
      loadBin: join(TARGET, "release", "holdfast-load"),
      log,
    });
  }
  if (runs("W8")) {
    const { runW8Server, W8_SERVER_DOCS } = await import("./w8-server.mjs");
    out.W8server = await runW8Server({ docs: W8_SERVER_DOCS, holdfastServerBin: process.env.HOLDFAST_SERVER_BIN, log });
  }
  if (runs("W7N")) {
    const { runW7Nodes } = await import("./w7-nodes.mjs");
    out.W7N = await runW7Nodes({
      clients: W7N_CLIENTS,
      seconds: W7_SECONDS,
      serverBin: process.env.HOLDFAST_SERVER_BIN,
      loadBin: join(TARGET, "release", "holdfast-load"),
      log,
    });
  }
  if (runs("W9")) {
    const { runW9 } = await import("./w9.mjs");
    out.W9 = await runW9({
      seconds: W9_SECONDS,
      reps: W9_REPS,
      systems: W9_SYSTEMS,
      idle: W9_IDLE,
      spamDocs: W9_SPAM_DOCS,
      maxSeconds: W9_MAX_SECONDS,
      holdfastServerBin: process.env.HOLDFAST_SERVER_BIN,
      loadBin: join(TARGET, "release", "holdfast-load"),
      log,
    });
  }

  meta.seconds = Math.round((Date.now() - started) / 1000);
  const { text, verdicts } = table(out);
  const results = join(BENCH, "results");
  mkdirSync(results, { recursive: true });
  writeFileSync(join(results, "latest.json"), JSON.stringify({ meta, results: out, verdicts }, null, 2));
  const head = `${meta.date.slice(0, 10)} · ${meta.cores} cores (${meta.cpu}) · ${meta.chromium ?? "no browser"} · node ${meta.node} · commit ${meta.commit} · \`${meta.command}\` · median (min–max) of ${REPS}${runs("W5B") && W5B_REPS !== REPS ? ` (W5b: ${W5B_REPS})` : ""}${runs("W9") ? ` (W9: ${W9_REPS})` : ""} · ${meta.seconds} s`;
  writeFileSync(join(results, "latest.md"), `${head}\n\n${text}\n`);
  console.log(`\n${head}\n\n${text}\n`);
  for (const v of verdicts) console.log(`${v.ok ? "met   " : "MISSED"} ${v.w} ${v.metric}${v.ratio === null ? "" : `: ${fmt(v.ratio, 2)}×`}${v.value === undefined ? "" : `: ${v.value}`} (target ${v.target})`);
  console.log(`\nraw figures: ${join(results, "latest.json")}`);
}

await main();
