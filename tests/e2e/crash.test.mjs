// Browser crash test: SIGKILL Chromium while a page is committing changes,
// relaunch it on the same profile, and check that every change the page was
// told is durable (its promise resolved) is in IndexedDB.
//
// We launch /usr/bin/chromium ourselves (harness.launchOwnedChromium) so
// that we own its pid; playwright-core only connects over CDP. Each round:
//
//   1. in the (re)launched browser, open the test page (served by
//      holdfast-server, no sync: the data can only come from this profile's
//      IndexedDB) and check the documents of every earlier round (below);
//   2. create a document and make changes in a tight loop, ~IN_FLIGHT
//      overlapping (not awaited one by one): change n sets `k<n> = n`; when
//      its promise resolves the page calls `reported(n, url)` (an exposed
//      function), so node knows only what was reported as durable;
//   3. after a seeded random delay, SIGKILL the browser process and wait for
//      it (and its child processes) to exit;
//   4. relaunch on the same user-data-dir and find the document: every
//      reported change must be there. Unreported ones may be there too
//      ("extra"); since each change depends on the one before, what is there
//      must be k0..k(F-1) (each change wholly present or absent, none without
//      its predecessors). Documents of earlier rounds must be unchanged.
//
// The mode: holdfast has no debounced / relaxed mode. Every change is
// committed in an IndexedDB transaction with `durability: "strict"` (group
// commit batches the changes in flight) and is reported only after that
// transaction completes, so "default" here IS strict (the repo reports
// durability "strict"; the test asserts it).
//
// What a SIGKILL of the browser proves: data the browser handed to the OS is
// kept (page cache); this catches reporting before IndexedDB committed, not
// a lost fsync on power failure.
//
//   HOLDFAST_CRASH_ROUNDS  rounds that reported changes (default 20)
//   HOLDFAST_CRASH_SEED    replay the kill delays of a printed seed
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchOwnedChromium, openPageIn, call, within } from "./harness.mjs";

const ROUNDS = Number(process.env.HOLDFAST_CRASH_ROUNDS ?? 20);
const SEED = Number(process.env.HOLDFAST_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 32));
const IN_FLIGHT = 20;
const DELAY_MS = [50, 1500]; // kill this long after the change loop started
const DB = "holdfast-crash";

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

let server, dir, owned;
before(async () => {
  server = await startServer(); // serves tests/e2e/page.html; the repo does not sync
  dir = mkdtempSync(join(tmpdir(), "holdfast-crash-profile-"));
});
after(async () => {
  await owned?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The `k<n>` keys of a document: the change numbers present, sorted. */
function present(doc) {
  const ns = [];
  for (const [k, v] of Object.entries(doc)) {
    const m = /^k(\d+)$/.exec(k);
    if (m) {
      assert.equal(v, Number(m[1]), `${k} holds its own number`);
      ns.push(v);
    }
  }
  return ns.sort((a, b) => a - b);
}

test(`SIGKILL the browser mid-commit: every reported change survives (${ROUNDS} rounds)`, { timeout: 60_000 + ROUNDS * 12_000 }, async () => {
  const rand = prng(SEED);
  console.log(`crash: seed ${SEED} (replay with HOLDFAST_CRASH_SEED=${SEED}), ${ROUNDS} rounds, ${IN_FLIGHT} changes in flight, kill after ${DELAY_MS[0]}-${DELAY_MS[1]} ms`);

  const reportedBy = new Map(); // doc url -> Set of change numbers reported durable
  const docs = []; // { url, round, reported, found } of every round so far, checked after every relaunch
  const lines = [];
  let counted = 0; // rounds with reported > 0
  let empty = 0; // kills before any change was reported (prove nothing; retried)
  let round = 0;
  let totals = { reported: 0, found: 0 };

  const t = { launch: 0, load: 0, write: 0, kill: 0 };
  const lap = (k, t0) => ((t[k] += Date.now() - t0), Date.now());
  let t0 = Date.now();
  owned = await launchOwnedChromium(dir);
  t0 = lap("launch", t0);
  for (;;) {
    const page = owned.context.pages()[0] ?? (await owned.context.newPage());
    await page.exposeFunction("reported", (n, url) => {
      let s = reportedBy.get(url);
      if (!s) reportedBy.set(url, (s = new Set()));
      s.add(n);
    });
    await openPageIn(page, server.http);
    // Bounded above the repo's own find timeout (30 s; with no sync server a
    // document missing from storage fails only then), so that a lost
    // document shows up as find's error rather than as our timeout.
    const { durability, docs: seen } = await within(
      page.evaluate(
        async ([db, urls]) => {
          const t0 = performance.now();
          window.progress = [`opening ${db}`];
          const { durability } = await hf.open(db);
          const docs = [];
          for (const url of urls) {
            window.progress.push(`${Math.round(performance.now() - t0)} ms: finding ${url}`);
            await hf.find(url); // rejects if the document (its create was reported) is gone
            docs.push(hf.doc(url));
          }
          window.progress.push(`${Math.round(performance.now() - t0)} ms: done`);
          return { durability, docs };
        },
        [DB, docs.map((d) => d.url)],
      ),
      "the relaunched browser to load every earlier document from IndexedDB",
      45_000,
    ).catch(async (e) => {
      const progress = await page.evaluate(() => window.progress).catch((e) => [`(unreadable: ${e.message})`]);
      throw new Error(`${e.message} (seed ${SEED}, after round ${round}); in the page: ${progress.join("; ")}`);
    });
    t0 = lap("load", t0);
    assert.equal(durability, "strict", "IndexedDB commits are strict (holdfast has no relaxed mode)");

    // Check what the last kill left, and that earlier rounds are unchanged.
    docs.forEach((d, i) => {
      const ns = present(seen[i]);
      const found = ns.length;
      assert.deepEqual(ns, [...Array(found).keys()], `round ${d.round}: the changes present are k0..k${found - 1}, none without its predecessors`);
      if (d.found === undefined) {
        const missing = [...d.reported].filter((n) => n >= found);
        const line =
          `round ${d.round}: reported ${d.reported.size}, found ${found} (extra ${found - d.reported.size})` +
          (d.uncounted ? ` — not counted: killed after ${d.delay} ms, before any change was reported` : "");
        console.log(line);
        lines.push(line);
        assert.deepEqual(missing, [], `round ${d.round} (seed ${SEED}): reported changes missing after the crash: ${missing.slice(0, 20).join(", ")}`);
        d.found = found;
        totals.reported += d.reported.size;
        totals.found += found;
      } else {
        assert.equal(found, d.found, `round ${d.round}: unchanged by later crashes`);
      }
    });
    if (counted >= ROUNDS) break;
    assert.ok(empty <= ROUNDS, `${empty} kills came before any change was reported: the delay is too short for this machine`);

    // The next round: a new document, changes in a tight loop, then the kill.
    round++;
    const url = await call(
      page,
      (inFlight) =>
        hf.create({}).then((url) => {
          let next = 0;
          const one = () => {
            const n = next++;
            hf.change(url, (d) => {
              d[`k${n}`] = n;
            }).then(
              () => {
                window.reported(n, url);
                one();
              },
              (e) => console.error(`change ${n} failed: ${e.name}: ${e.message}`),
            );
          };
          for (let i = 0; i < inFlight; i++) one();
          return url;
        }),
      IN_FLIGHT,
      "the round's document to be created",
    );
    const delay = Math.round(DELAY_MS[0] + rand() * (DELAY_MS[1] - DELAY_MS[0]));
    await new Promise((r) => setTimeout(r, delay)); // the random instant of the crash
    t0 = lap("write", t0);
    await owned.kill();
    t0 = lap("kill", t0);
    const reported = new Set(reportedBy.get(url) ?? []);
    assert.deepEqual(page.hfErrors, [], `round ${round}: no page errors before the kill`);
    if (reported.size > 0) {
      counted++;
      docs.push({ url, round, reported });
    } else {
      // Killed before the first commit completed: this round proves nothing.
      empty++;
      docs.push({ url, round, reported, uncounted: true, delay });
    }
    owned = await launchOwnedChromium(dir);
    t0 = lap("launch", t0);
  }
  console.log(`crash: time spent (ms): ${JSON.stringify(t)}`);

  console.log(
    `crash summary: seed ${SEED}, ${counted} rounds with reported changes (+${empty} killed before the first report), ` +
      `reported ${totals.reported}, found ${totals.found} (extra ${totals.found - totals.reported}), lost 0; ` +
      `mode: strict (holdfast has no debounced mode: every change is committed with IndexedDB durability "strict" before it is reported)`,
  );
  assert.ok(counted >= ROUNDS);
});
