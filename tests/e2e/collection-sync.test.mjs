// The collection exchange end to end (issue 13, docs/design.md §5b): "a
// client holding 200 documents goes offline, another client changes 5 of
// them (one the first client has never opened in this page), the first
// comes back online after a reload and has all 5, durable, and the server
// saw ≤ 20 sync messages from it."
//
//   1. Device A (its own Chromium on a persistent profile, so IndexedDB is
//      on disk) creates 200 documents, waits until every one is on the
//      server (whenSynced), closes its repo and its browser.
//   2. Device B (another browser, its own profile) finds 5 of them, changes
//      each, waits until the server has the changes, and leaves; the server
//      then has no connection.
//   3. A is relaunched on the same profile (a fresh page) and opens its repo
//      with sync. It finds 4 of the 5 documents; the 5th it never opens in
//      this page. The repo-level `change` event must report B's heads for
//      all 5 (the unopened one arrives without a find). Then A goes offline.
//      The server's `/metrics` read before A connected and after A's
//      connection closed bound what A sent in its whole connection: at most
//      20 `sync` messages, so the 195 unchanged documents caused none (it
//      prints the counts per type).
//   4. A's page reloads (the repo not closed) and opens WITHOUT sync: the 5
//      documents, the unopened one included, have B's edits from IndexedDB
//      alone.
//
// Every wait is on an event or a server round trip, bounded by a timeout.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchBrowser, launchOwnedChromium, openPage, openPageIn, call, waitIn, within, eventually } from "./harness.mjs";

const DOCS = 200;
const CHANGED = [3, 57, 101, 150, 199]; // indexes B changes; A never opens the last one in step 3
const NEVER_OPENED = CHANGED.at(-1);
const MAX_SYNC = 20;
const SLOW = 120_000; // bound for the steps that touch all 200 documents (debug wasm)
const DB = "device-a";

let server, browser, dir, owned;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  dir = mkdtempSync(join(tmpdir(), "holdfast-collection-profile-"));
});
after(async () => {
  await owned?.close();
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The server's `/metrics`: `{ received: {type: n}, connections, text }`. */
async function metrics() {
  const res = await within(fetch(`${server.http}/metrics`), "GET /metrics");
  const text = await res.text();
  assert.equal(res.status, 200, `GET /metrics: ${text}`);
  const received = {};
  let connections;
  for (const line of text.split("\n")) {
    let m = /^holdfast_messages_received_total\{type="([^"]+)"\} (\d+)$/.exec(line);
    if (m) received[m[1]] = Number(m[2]);
    m = /^holdfast_connections (\d+)$/.exec(line);
    if (m) connections = Number(m[1]);
  }
  assert.equal(typeof connections, "number", `holdfast_connections in:\n${text}`);
  return { received, connections, text };
}

/** Ask the server until it has no connection (a closed socket reaches its
 * task a moment after the page closed it); resolves with those metrics. */
function serverIdle(what) {
  return eventually(`the server to have no connection (${what})`, async () => {
    const m = await metrics();
    return m.connections === 0 && m;
  });
}

/** A's browser: Chromium on the persistent profile `dir`, one page of the
 * test page. */
async function launchA() {
  owned = await launchOwnedChromium(dir);
  const page = owned.context.pages()[0] ?? (await owned.context.newPage());
  return openPageIn(page, server.http);
}

const idOf = (url) => url.replace(/^automerge:/, "");
const sortedJson = (heads) => JSON.stringify([...heads].sort());

test("a reconnect after a reload syncs only the 5 changed of 200 documents, unopened ones too", { timeout: 600_000 }, async () => {
  // ---------------------------------------------------------------- 1. A creates 200
  const t0 = Date.now();
  let a = await launchA();
  const urls = await within(
    a.evaluate(
      async ([db, ws, n]) => {
        await hf.open(db, [ws]);
        const handles = await Promise.all(Array.from({ length: n }, (_, i) => hf.repo.create({ n: i, title: `doc ${i}` })));
        await Promise.all(handles.map((h) => h.whenSynced()));
        const urls = handles.map((h) => h.url);
        await hf.close(); // writes what it keeps in memory (cursor, acknowledged heads)
        return urls;
      },
      [DB, server.ws, DOCS],
    ),
    `A to create ${DOCS} documents and have them on the server`,
    SLOW,
  );
  assert.equal(new Set(urls).size, DOCS);
  assert.deepEqual(a.hfErrors, []);
  await owned.close();
  owned = undefined;
  const afterA = await serverIdle("A closed");
  console.log(`step 1: ${DOCS} documents created and on the server in ${Date.now() - t0} ms; the server received ${JSON.stringify(afterA.received)}`);

  // ---------------------------------------------------------------- 2. B changes 5
  const t1 = Date.now();
  const changed = CHANGED.map((i) => urls[i]);
  const b = await openPage(browser, server.http);
  const bHeads = await within(
    b.evaluate(
      async ([ws, changed]) => {
        await hf.open("device-b", [ws]);
        const heads = {};
        await Promise.all(
          changed.map(async (url) => {
            await hf.find(url);
            heads[url] = await hf.change(url, (d) => {
              d.title = `${d.title} (edited by B)`;
              d.editedBy = "B";
            });
            await hf.whenSynced(url);
          }),
        );
        await hf.close();
        return heads;
      },
      [server.ws, changed],
    ),
    "B to find, change and sync 5 documents",
    SLOW,
  );
  assert.deepEqual(b.hfErrors, []);
  await b.context().close();
  const before = await serverIdle("B closed");
  console.log(`step 2: B changed 5 documents in ${Date.now() - t1} ms`);

  // ---------------------------------------------------------------- 3. A comes back
  a = await launchA();
  const t2 = Date.now();
  const want = Object.fromEntries(changed.map((url) => [idOf(url), sortedJson(bHeads[url])]));
  // Our own Repo.open (not hf.open), so that the repo-level `change`
  // listener is attached before any frame can arrive: the socket opens
  // inside Repo.open, its frames are tasks, the listener is added in the
  // same microtask chain that Repo.open resolves in.
  await call(
    a,
    async ([db, ws, want]) => {
      const { Repo } = await import("/pkg/index.js");
      window.hfChanges = [];
      const seen = new Set();
      let all;
      window.hfAllArrived = new Promise((resolve) => (all = resolve));
      const repo = await Repo.open({ indexedDB: db, sync: [ws] });
      repo.on("change", (e) => {
        hfChanges.push({ documentId: e.documentId, heads: e.heads, source: e.source });
        if (want[e.documentId] === JSON.stringify([...e.heads].sort())) {
          seen.add(e.documentId);
          if (seen.size === Object.keys(want).length) all();
        }
      });
      hf.repo = repo;
    },
    [DB, server.ws, want],
    "A to open its repo with sync",
  );
  // Open 4 of the 5 in this page; never the 5th.
  const opened = changed.filter((url) => url !== urls[NEVER_OPENED]);
  await call(a, (opened) => Promise.all(opened.map((url) => hf.find(url))), opened, "A to find 4 documents");
  try {
    await within(a.evaluate(() => window.hfAllArrived), "A's change events with B's heads for all 5 documents", SLOW);
  } catch (e) {
    const log = await a.evaluate(() => hfChanges).catch(() => "?");
    console.log(`changes A saw: ${JSON.stringify(log)}\nserver metrics:\n ${(await metrics()).text}`);
    throw e;
  }
  const arrivedMs = Date.now() - t2;

  // The found ones show B's edits in their handles as well.
  for (const url of opened) {
    const doc = await call(a, (url) => hf.doc(url), url);
    assert.equal(doc.editedBy, "B", `${url}: ${JSON.stringify(doc)}`);
    assert.ok(await call(a, ([url, heads]) => hf.headsEqual(url, heads), [url, bHeads[url]]), `${url} has B's heads`);
  }
  // Only the 5 changed: every change event is one of them, from the server.
  const changes = await call(a, () => hfChanges);
  const changedIds = new Set(changed.map(idOf));
  const strays = changes.filter((c) => !changedIds.has(c.documentId) || c.source !== "remote");
  assert.deepEqual(strays, [], "change events only for the 5 documents B changed, all remote");

  // End A's connection, so that everything it sent is counted.
  await call(a, () => hf.repo.goOffline());
  const afterReconnect = await serverIdle("A offline");
  const sent = {};
  for (const [type, n] of Object.entries(afterReconnect.received)) {
    const d = n - (before.received[type] ?? 0);
    if (d) sent[type] = d;
  }
  const syncs = sent.sync ?? 0;
  console.log(
    `step 3: all 5 changes arrived ${arrivedMs} ms after A's Repo.open began; ` +
      `A's reconnect sent the server ${JSON.stringify(sent)} (sync: ${syncs}, bound ${MAX_SYNC}); ` +
      `${changes.length} change events for ${new Set(changes.map((c) => c.documentId)).size} documents`,
  );
  assert.ok(syncs <= MAX_SYNC, `the server received ${syncs} sync messages from A's reconnect (≤ ${MAX_SYNC}): ${JSON.stringify(sent)}`);
  assert.equal(sent["holdfast-resume"], 1, `A resumed with one holdfast-resume: ${JSON.stringify(sent)}`);
  assert.equal(sent.join, 1, `A joined once: ${JSON.stringify(sent)}`);
  assert.deepEqual(a.hfErrors, []);

  // ---------------------------------------------------------------- 4. durable
  // Reload without closing the repo (a fresh JS heap and wasm instance; only
  // IndexedDB carries over) and open WITHOUT sync.
  await a.reload();
  await waitIn(a, () => window.hfReady === true, undefined, "A's reloaded page");
  const local = await within(
    a.evaluate(
      async ([db, changed, unchanged]) => {
        const opened = await hf.open(db);
        const docs = {};
        for (const url of [...changed, ...unchanged]) {
          await hf.find(url);
          docs[url] = { doc: hf.doc(url), heads: hf.heads(url) };
        }
        return { status: opened.status, docs };
      },
      [DB, changed, [urls[0], urls[100], urls[198]]],
    ),
    "A to read the documents from IndexedDB alone",
    SLOW,
  );
  assert.equal(local.status, "offline", "no sync servers: nothing can come from the network");
  for (const url of changed) {
    const i = urls.indexOf(url);
    assert.deepEqual(local.docs[url].doc, { n: i, title: `doc ${i} (edited by B)`, editedBy: "B" }, `${url} (index ${i}) from IndexedDB`);
    assert.equal(sortedJson(local.docs[url].heads), sortedJson(bHeads[url]), `${url} heads`);
  }
  for (const i of [0, 100, 198]) assert.deepEqual(local.docs[urls[i]].doc, { n: i, title: `doc ${i}` });
  assert.deepEqual(a.hfErrors, []);
  console.log(`step 4: the 5 documents (index ${NEVER_OPENED} never opened before) are in A's IndexedDB; total ${Date.now() - t0} ms`);
});
