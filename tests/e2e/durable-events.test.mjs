// What the npm package reports, in Chromium against real IndexedDB:
//
// - a `change` event's `doc` is the durable document at the event's heads,
//   never a later edit that is not yet saved (and never one whose commit
//   then fails), while `h.doc()` is what the app sees now, unsaved edits
//   included;
// - a database the browser reset (here: deleted and recreated underneath,
//   between two opens) is detected and reported (`storage-reset`,
//   `repo.storageReset`), and a document lost with it is `DocumentLostError`,
//   never `DocumentUnavailableError` ("never existed");
// - `whenSynced()` on a repo without a sync server rejects at once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, openPage, call } from "./harness.mjs";

let server, browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Open a repo on a fresh database in a new context; returns the page. */
async function freshPage(db) {
  const page = await openPage(browser, server.http);
  await call(page, (db) => hf.open(db), db, "the repo to open");
  return page;
}

/**
 * The two-change probe: `change(A)`, then `change(B)` while A's commit is in
 * flight (made from the commit observer, when A's commit is handed to
 * IndexedDB; it cannot complete before the observer returns). With `failB`,
 * B's commit then fails inside IndexedDB (a put the browser refuses: the
 * transaction aborts). Resolves with what the page saw: the events' docs and
 * heads, what each change resolved with (or its error's name), and
 * `h.doc()` right after each change call.
 */
function probe(page, { failB }) {
  return call(
    page,
    async (failB) => {
      const url = await hf.create({});
      const h = await hf.repo.find(url);
      const inner = hf.repo._inner();
      const events = [];
      h.on("change", (e) => events.push({ doc: e.doc, heads: e.heads }));
      const settle = (p) => p.then((heads) => ({ heads }), (e) => ({ error: e.name }));
      let b;
      inner.setCommitObserver(() => {
        inner.setCommitObserver(null);
        const p = settle(h.change((d) => (d.b = 1)));
        b = { p, docAfterB: h.doc() };
        // A's commit reaches IndexedDB right after this observer: skip it.
        if (failB) inner._failCommit(1);
      });
      const a = settle(h.change((d) => (d.a = 1)));
      const docAfterA = h.doc();
      const ra = await a;
      const rb = await b.p;
      return { events, a: ra, b: rb, docAfterA, docAfterB: b.docAfterB, docAtEnd: h.doc() };
    },
    failB,
    "the two-change probe",
  );
}

test("a change event shows the durable document at its heads, not the next unsaved change", async () => {
  const page = await freshPage("probe-ok");
  const r = await probe(page, { failB: false });
  assert.deepEqual(r.docAfterA, { a: 1 }, "h.doc() shows a change at once, before it is saved");
  assert.deepEqual(r.docAfterB, { a: 1, b: 1 }, "h.doc() includes unsaved edits");
  assert.ok(r.a.heads && r.b.heads, `both changes saved: ${JSON.stringify(r)}`);
  assert.equal(r.events.length, 2, `A and B were committed separately: ${JSON.stringify(r.events)}`);
  const [ea, eb] = r.events;
  assert.deepEqual(ea.heads, r.a.heads, "the first event is A's");
  assert.deepEqual(ea.doc, { a: 1 }, "A's event shows A's durable document, without B");
  assert.deepEqual(eb.heads, r.b.heads);
  assert.deepEqual(eb.doc, { a: 1, b: 1 });
  await page.context().close();
});

test("when B's commit fails, A's event never showed B", async () => {
  const page = await freshPage("probe-fail");
  const r = await probe(page, { failB: true });
  assert.ok(r.a.heads, `A was saved: ${JSON.stringify(r.a)}`);
  assert.equal(r.b.error, "StorageAbortedError", `B's commit failed: ${JSON.stringify(r.b)}`);
  assert.equal(r.events.length, 1, `one change event, A's: ${JSON.stringify(r.events)}`);
  assert.deepEqual(r.events[0].heads, r.a.heads);
  assert.deepEqual(r.events[0].doc, { a: 1 }, "A's event does not show B, which was never saved");
  assert.deepEqual(r.docAtEnd, { a: 1 }, "the document is back at its last durable state");
  await page.context().close();
});

test("a database deleted and recreated underneath is reported as a reset; its documents are lost, not unknown", async () => {
  const page = await openPage(browser, server.http);
  const r = await call(
    page,
    async () => {
      const { Repo } = await import("/pkg/index.js");
      const name = "reset-probe";
      const open = async () => {
        const repo = await Repo.open({ indexedDB: name });
        const events = [];
        repo.on("storage-reset", (e) => events.push(e));
        return { repo, events };
      };
      const findError = (repo, url) => repo.find(url).then(() => null, (e) => ({ name: e.name, message: e.message }));
      const deleteRaw = () =>
        new Promise((resolve, reject) => {
          const req = indexedDB.deleteDatabase(name);
          req.onsuccess = resolve;
          req.onerror = () => reject(req.error);
        });
      const macrotask = () => new Promise((r) => setTimeout(r, 0));
      const out = {};

      // 1. A first open: nothing to report.
      let { repo, events } = await open();
      const h = await repo.create({ n: 1 });
      out.first = { reset: repo.storageReset, neverFound: await findError(repo, "automerge:2hDChH3s9dpeV6d925te7G5c39Wi") };
      await repo.close();
      await macrotask();
      out.first.events = events.length;

      // 2. Deleted and recreated underneath (not through holdfast).
      await deleteRaw();
      ({ repo, events } = await open());
      out.afterReset = { reset: repo.storageReset, lost: await findError(repo, h.url) };
      await macrotask();
      out.afterReset.events = events;
      await repo.close();

      // 3. Reopened later: still known (no new event), still "lost".
      ({ repo, events } = await open());
      out.reopened = { reset: repo.storageReset, lost: await findError(repo, h.url) };
      await macrotask();
      out.reopened.events = events.length;
      await repo.close();

      // 4. Deleted on purpose through holdfast: a fresh start, no reset.
      await Repo.deleteDatabase(name);
      ({ repo, events } = await open());
      out.deliberate = { reset: repo.storageReset, unknown: await findError(repo, h.url) };
      await macrotask();
      out.deliberate.events = events.length;
      await repo.close();
      return out;
    },
    undefined,
    "the reset probe",
  );
  assert.equal(r.first.reset, null, "a new database is no reset");
  assert.equal(r.first.events, 0);
  assert.equal(r.first.neverFound.name, "DocumentUnavailableError", "a document never stored: unavailable");

  assert.equal(r.afterReset.reset?.reason, "recreated", `repo.storageReset after the database was recreated: ${JSON.stringify(r.afterReset.reset)}`);
  assert.equal(r.afterReset.reset.detectedNow, true);
  assert.match(r.afterReset.reset.detail, /created anew/);
  assert.equal(r.afterReset.events.length, 1, "one storage-reset event");
  assert.deepEqual(r.afterReset.events[0], r.afterReset.reset);
  assert.equal(r.afterReset.lost?.name, "DocumentLostError", `a document lost with the database: ${JSON.stringify(r.afterReset.lost)}`);
  assert.match(r.afterReset.lost.message, /lost data/);

  assert.equal(r.reopened.reset?.reason, "recreated", "the reset is remembered across opens");
  assert.equal(r.reopened.reset.detectedNow, false);
  assert.equal(r.reopened.events, 0, "and not reported again");
  assert.equal(r.reopened.lost?.name, "DocumentLostError");

  assert.equal(r.deliberate.reset, null, "Repo.deleteDatabase is no reset");
  assert.equal(r.deliberate.events, 0);
  assert.equal(r.deliberate.unknown?.name, "DocumentUnavailableError");
  await page.context().close();
});

test("whenSynced() without a sync server rejects at once with NoSyncServerError", async () => {
  const page = await freshPage("no-sync");
  const r = await call(page, async () => {
    const url = await hf.create({ x: 1 });
    const h = await hf.repo.find(url);
    return h.whenSynced().then(
      () => "resolved",
      (e) => e.name,
    );
  });
  assert.equal(r, "NoSyncServerError");
  await page.context().close();
});
