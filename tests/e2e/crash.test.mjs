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
// Aimed kills: in a seeded share of the launches (HOLDFAST_CRASH_AIMED) the
// repo compacts after every 4 incremental records, and the kill is aimed at
// the moment a compaction commit (a snapshot put, or the deletion of the
// records a snapshot covers, or a quarantine move) is handed to IndexedDB:
// the page reports each such commit through an exposed function and node
// kills 0-4 ms after the n-th one (n seeded, 1-3); a third of those launches
// is killed that way while loading the earlier documents (their compaction
// on load, a quarantine), the rest while writing. Before such a launch
// opens the repo, the page writes a corrupt record under a (seeded) earlier
// document, so that its load quarantines it: one more commit to aim at.
//
// When a relaunch cannot find a document, or holdfast reports that the
// browser reset the database, the test prints what tells the causes apart:
// the database's version and object stores, every key under each document's
// prefix, the quarantine keys, holdfast's identity record, what the
// browser's `upgradeneeded` said (oldVersion, dataLoss, dataLossMessage),
// the page's console, and the files of the profile's IndexedDB directory.
//
//   HOLDFAST_CRASH_ROUNDS  rounds that reported changes (default 20)
//   HOLDFAST_CRASH_SEED    replay the kill delays of a printed seed
//   HOLDFAST_CRASH_AIMED   share of launches with aimed kills (default 0.5)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchOwnedChromium, openPageIn, call, within, prng } from "./harness.mjs";

const ROUNDS = Number(process.env.HOLDFAST_CRASH_ROUNDS ?? 20);
const SEED = Number(process.env.HOLDFAST_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 32));
const AIMED = Number(process.env.HOLDFAST_CRASH_AIMED ?? 0.5);
const IN_FLIGHT = 20;
const DELAY_MS = [50, 1500]; // kill this long after the change loop started
const COMPACT_AFTER = 4; // aimed launches: compaction all the time
const RESETS_FATAL = process.env.HOLDFAST_CRASH_RESETS_FATAL === "1";
const DB = "holdfast-crash";

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

/**
 * Everything that tells a lost record from a database the browser reset,
 * read straight from IndexedDB in the page (not through holdfast).
 */
function inspectDatabase([db, ids]) {
  const req = (r) => new Promise((res, rej) => ((r.onsuccess = () => res(r.result)), (r.onerror = () => rej(r.error))));
  return (async () => {
    const out = { databases: (await indexedDB.databases?.())?.map((d) => `${d.name} v${d.version}`) };
    const open = indexedDB.open(db);
    open.onupgradeneeded = (e) => (out.upgradeOnInspect = { oldVersion: e.oldVersion, dataLoss: e.dataLoss, dataLossMessage: e.dataLossMessage });
    const conn = await req(open);
    out.version = conn.version;
    out.stores = [...conn.objectStoreNames];
    if (out.stores.includes("documents")) {
      const store = conn.transaction("documents").objectStore("documents");
      const keys = await req(store.getAllKeys());
      out.records = keys.length;
      const meta = await req(store.get(["$holdfast", "database"]));
      out.identityRecord = meta ? new TextDecoder().decode(meta.binary) : null;
      out.documents = ids.map((id) => ({ id, keys: keys.filter((k) => k[0] === id && k[1] !== "quarantine").map((k) => k.slice(1).join("/")) }));
      out.quarantine = keys.filter((k) => k[1] === "quarantine").map((k) => k.join("/"));
      out.otherPrefixes = [...new Set(keys.map((k) => k[0]).filter((p) => !ids.includes(p)))];
    }
    conn.close();
    out.repo = { storageReset: window.hf.repo?.storageReset ?? null, identity: window.hf.repo?._inner().storageIdentity ?? null };
    out.log = window.hf.log.filter((e) => e.type.startsWith("storage"));
    return out;
  })();
}

/** The files of the profile's IndexedDB directory, with sizes. */
function indexedDbFiles(profile) {
  const root = join(profile, "Default", "IndexedDB");
  const out = [];
  const walk = (d) => {
    let entries = [];
    try {
      entries = readdirSync(d);
    } catch (e) {
      out.push(`${d}: ${e.code}`);
      return;
    }
    for (const name of entries) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out.push(`${p.slice(root.length + 1)} ${st.size} B`);
    }
  };
  walk(root);
  return out;
}

async function diagnose(page, docs) {
  const ids = docs.map((d) => d.url.slice("automerge:".length));
  const db = await within(page.evaluate(inspectDatabase, [DB, ids]), "reading IndexedDB directly", 10_000).catch((e) => ({ unreadable: e.message }));
  return [
    `database: ${JSON.stringify(db, null, 1)}`,
    `profile IndexedDB files:\n  ${indexedDbFiles(dir).join("\n  ")}`,
    `page console (last ${page.hfConsole?.length ?? 0} lines):\n  ${(page.hfConsole ?? []).join("\n  ")}`,
    `rounds: ${docs.map((d) => `${d.round}:${d.url.slice(10, 18)}…(${d.found ?? "?"} found, ${d.kill})`).join(" ")}`,
  ].join("\n");
}

test(`SIGKILL the browser mid-commit: every reported change survives (${ROUNDS} rounds)`, { timeout: 60_000 + ROUNDS * 30_000 }, async () => {
  const rand = prng(SEED);
  console.log(
    `crash: seed ${SEED} (replay with HOLDFAST_CRASH_SEED=${SEED}), ${ROUNDS} rounds, ${IN_FLIGHT} changes in flight, ` +
      `kill after ${DELAY_MS[0]}-${DELAY_MS[1]} ms or aimed at a compaction commit in ${Math.round(AIMED * 100)} % of launches`,
  );

  const reportedBy = new Map(); // doc url -> Set of change numbers reported durable
  const docs = []; // { url, round, reported, found, kill } of every round so far, checked after every relaunch
  let counted = 0; // rounds with reported > 0
  let empty = 0; // kills before any change was reported (prove nothing; retried)
  let round = 0;
  let aimedKills = 0;
  let loadKills = 0;
  const resets = []; // databases the browser reset (detected and reported by holdfast)
  let handledResetAt; // detectedAt of the last reset handled // kills aimed at a commit made while loading earlier documents
  let compactionCommits = 0; // seen by aimed launches
  let onCompaction = null; // set while a round waits to aim its kill
  let totals = { reported: 0, found: 0 };

  const t = { launch: 0, load: 0, write: 0, kill: 0 };
  const lap = (k, t0) => ((t[k] += Date.now() - t0), Date.now());
  let t0 = Date.now();
  owned = await launchOwnedChromium(dir);
  t0 = lap("launch", t0);
  for (;;) {
    const aimed = rand() < AIMED;
    const page = owned.context.pages()[0] ?? (await owned.context.newPage());
    await page.exposeFunction("reported", (n, url) => {
      let s = reportedBy.get(url);
      if (!s) reportedBy.set(url, (s = new Set()));
      s.add(n);
    });
    await page.exposeFunction("compacting", (c) => {
      compactionCommits++;
      onCompaction?.(c);
    });
    await openPageIn(page, server.http);
    // Bounded above the repo's own find timeout (30 s; with no sync server a
    // document missing from storage fails at once), so that a lost document
    // shows up as find's error rather than as our timeout.
    // A third of the aimed launches (with earlier documents) is killed while
    // it loads them: at a compaction or quarantine commit made by the load.
    let killedInLoad = null;
    if (aimed && docs.length > 0 && rand() < 1 / 3) {
      const nth = 1 + Math.floor(rand() * 3);
      const after = Math.floor(rand() * 5);
      let seen = 0;
      onCompaction = (c) => {
        if (++seen < nth) return;
        onCompaction = null;
        killedInLoad = new Promise((r) => setTimeout(r, after)).then(() => owned.kill()).then(() => `${after} ms into load commit #${nth} ${JSON.stringify(c)}`);
      };
    }
    const loading = within(
      page.evaluate(
        async ([db, urls, aimed, compactAfter, corrupt]) => {
          const t0 = performance.now();
          window.progress = [];
          window.progress.push(`opening ${db}`);
          // holdfast opens the database first: it must be the one to see
          // what the browser says on upgradeneeded (dataLoss).
          const { durability, storageReset } = await hf.open(db, [], aimed ? { _compactAfter: compactAfter } : {});
          if (corrupt !== null) {
            // A record whose bytes do not hash to its key, written before
            // the document is loaded: the load quarantines it (a quarantine
            // commit for the kill to hit).
            const id = urls[corrupt].slice("automerge:".length);
            const key = [id, "incremental", "0".repeat(63) + (Date.now() % 10)];
            const req = (r) => new Promise((res, rej) => ((r.onsuccess = () => res(r.result)), (r.onerror = () => rej(r.error))));
            const conn = await req(indexedDB.open(db, 1));
            const tx = conn.transaction("documents", "readwrite", { durability: "strict" });
            tx.objectStore("documents").put({ key, binary: crypto.getRandomValues(new Uint8Array(64)) }, key);
            await new Promise((res, rej) => ((tx.oncomplete = res), (tx.onabort = () => rej(tx.error))));
            conn.close();
            window.progress.push(`wrote a corrupt record ${key.join("/")}`);
          }
          if (aimed) {
            hf.repo._inner().setCommitObserver((c) => {
              if (c.snapshots || c.deletes || c.quarantined) window.compacting(c);
            });
          }
          // All at once (one IndexedDB read transaction serves them all).
          window.progress.push(`${Math.round(performance.now() - t0)} ms: finding ${urls.length} documents`);
          const results = await Promise.all(
            urls.map((url) =>
              hf.find(url).then(
                () => ({ doc: hf.doc(url) }),
                (e) => ({ error: { name: e.name, message: e.message } }),
              ),
            ),
          );
          window.progress.push(`${Math.round(performance.now() - t0)} ms: done`);
          return { durability, storageReset, results, progress: window.progress };
        },
        [DB, docs.map((d) => d.url), aimed, COMPACT_AFTER, aimed && docs.length > 0 ? Math.floor(rand() * docs.length) : null],
      ),
      "the relaunched browser to load every earlier document from IndexedDB",
      45_000,
    );
    const loaded = await loading.catch(async (e) => {
      if (killedInLoad) return null;
      onCompaction = null;
      const progress = await page.evaluate(() => window.progress).catch((e) => [`(unreadable: ${e.message})`]);
      throw new Error(`${e.message} (seed ${SEED}, after round ${round}); in the page: ${progress.join("; ")}\n${await diagnose(page, docs)}`);
    });
    onCompaction = null;
    if (killedInLoad) {
      // Killed mid-load: nothing new was reported; the next launch checks
      // that every earlier document is unchanged.
      const what = await killedInLoad;
      loadKills++;
      console.log(`after round ${round}: killed while loading, ${what}`);
      t0 = lap("load", t0);
      owned = await launchOwnedChromium(dir);
      t0 = lap("launch", t0);
      continue;
    }
    t0 = lap("load", t0);
    assert.equal(loaded.durability, "strict", "IndexedDB commits are strict (holdfast has no relaxed mode)");

    const failed = loaded.results.map((r, i) => ({ ...r, d: docs[i] })).filter((r) => r.error);
    // A reset not handled yet: detected by this open, or by an earlier one
    // that was killed while it loaded (the database remembers its resets).
    const reset = loaded.storageReset;
    if (reset && reset.detectedAt !== handledResetAt) {
      handledResetAt = reset.detectedAt;
      // The browser discarded the database (or it was recreated). Holdfast
      // cannot keep what the browser throws away; it must say so, and must
      // not call the lost documents "never existed".
      const detail =
        `the browser reset IndexedDB database ${DB} after round ${round} (seed ${SEED}): ${JSON.stringify(loaded.storageReset)}; ` +
        `${failed.length} of ${docs.length} earlier documents gone\n${await diagnose(page, docs)}`;
      const wrong = failed.filter((r) => r.error.name !== "DocumentLostError");
      assert.deepEqual(wrong.map((r) => r.error), [], `a document lost with the database is reported as DocumentLostError: ${detail}`);
      const events = await page.evaluate(() => hf.log.filter((e) => e.type === "storage-reset"));
      assert.equal(events.length, reset.detectedNow ? 1 : 0, `a storage-reset event from the open that detected it: ${JSON.stringify(events)}; ${detail}`);
      console.log(`BROWSER RESET: ${detail}`);
      resets.push(`after round ${round}: ${reset.reason}: ${reset.detail}`);
      if (RESETS_FATAL) assert.fail(`HOLDFAST_CRASH_RESETS_FATAL: ${detail}`);
      // What the browser threw away proves nothing about holdfast: those
      // rounds no longer count (a round whose kill was already checked
      // stays counted); the test goes on from the new database.
      const lost = new Set(failed.map((r) => r.d));
      for (const d of lost) if (d.found === undefined && !d.uncounted) counted--;
      const kept = loaded.results.filter((_, i) => !lost.has(docs[i]));
      docs.splice(0, docs.length, ...docs.filter((d) => !lost.has(d)));
      loaded.results = kept;
    } else if (failed.length > 0) {
      const list = failed.map((r) => `round ${r.d.round} ${r.d.url}: ${r.error.name}: ${r.error.message}`).join("\n  ");
      assert.fail(
        `after round ${round} (seed ${SEED}) documents whose creation was reported cannot be found:\n  ${list}\n` +
          `in the page: ${loaded.progress.join("; ")}\n${await diagnose(page, docs)}`,
      );
    }

    // Check what the last kill left, and that earlier rounds are unchanged.
    for (const [i, d] of docs.entries()) {
      const ns = present(loaded.results[i].doc);
      const found = ns.length;
      assert.deepEqual(ns, [...Array(found).keys()], `round ${d.round}: the changes present are k0..k${found - 1}, none without its predecessors`);
      if (d.found === undefined) {
        const missing = [...d.reported].filter((n) => n >= found);
        console.log(
          `round ${d.round}: reported ${d.reported.size}, found ${found} (extra ${found - d.reported.size}); kill ${d.kill}` +
            (d.uncounted ? " — not counted: killed before any change was reported" : ""),
        );
        if (missing.length > 0) {
          assert.fail(`round ${d.round} (seed ${SEED}): reported changes missing after the crash: ${missing.slice(0, 20).join(", ")}\n${await diagnose(page, docs)}`);
        }
        d.found = found;
        totals.reported += d.reported.size;
        totals.found += found;
      } else if (found !== d.found) {
        assert.fail(`round ${d.round} (seed ${SEED}): changed by a later crash: ${d.found} changes before, ${found} now\n${await diagnose(page, docs)}`);
      }
    }
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
    let kill = `after ${delay} ms`;
    if (aimed) {
      // The n-th compaction commit from now, then 0-4 ms; at the latest
      // DELAY_MS[1] (a launch that compacts nothing is killed at random).
      const nth = 1 + Math.floor(rand() * 3);
      const after = Math.floor(rand() * 5);
      let seen = 0;
      kill = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(`after ${DELAY_MS[1]} ms (aimed, ${seen} compaction commits seen)`), DELAY_MS[1]);
        onCompaction = (c) => {
          if (++seen < nth) return;
          onCompaction = null;
          clearTimeout(timer);
          aimedKills++;
          setTimeout(() => resolve(`aimed: ${after} ms into compaction commit #${nth} ${JSON.stringify(c)}`), after);
        };
      });
      onCompaction = null;
    } else {
      await new Promise((r) => setTimeout(r, delay)); // the random instant of the crash
    }
    t0 = lap("write", t0);
    await owned.kill();
    t0 = lap("kill", t0);
    const reported = new Set(reportedBy.get(url) ?? []);
    assert.deepEqual(page.hfErrors, [], `round ${round}: no page errors before the kill`);
    if (reported.size > 0) {
      counted++;
      docs.push({ url, round, reported, kill });
    } else {
      // Killed before the first commit completed: this round proves nothing.
      empty++;
      docs.push({ url, round, reported, uncounted: true, kill });
    }
    owned = await launchOwnedChromium(dir);
    t0 = lap("launch", t0);
  }
  console.log(`crash: time spent (ms): ${JSON.stringify(t)}`);

  console.log(
    `crash summary: seed ${SEED}, ${counted} rounds with reported changes (+${empty} killed before the first report), ` +
      `reported ${totals.reported}, found ${totals.found} (extra ${totals.found - totals.reported}), lost 0; ` +
      `database resets by the browser: ${resets.length}${resets.length ? ` (each detected: storage-reset, DocumentLostError) [${resets.join("; ")}]` : ""}; ` +
      `${aimedKills} kills aimed at a compaction commit (${compactionCommits} seen) and ${loadKills} at a load's compaction or quarantine commit; ` +
      `mode: strict (holdfast has no debounced mode: every change is committed with IndexedDB durability "strict" before it is reported)`,
  );
  assert.ok(counted >= ROUNDS);
});
