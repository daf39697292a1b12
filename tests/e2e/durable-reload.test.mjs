// Durable across reload: what a page was told is durable (resolved change
// promises) is in IndexedDB after the page reloads. No sync server: the
// document can only come back from this context's own IndexedDB.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, openPage, call, waitIn } from "./harness.mjs";

let server, browser;
before(async () => {
  server = await startServer(); // only serves the page; the repo does not sync
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a document and all its awaited changes survive a page reload", { timeout: 60_000 }, async () => {
  const page = await openPage(browser, server.http);
  const opened = await call(page, () => hf.open("e2e-durable"), undefined, "the repo to open");
  assert.equal(opened.durability, "strict", "Chromium honours IndexedDB strict durability");
  assert.equal(opened.status, "offline", "no sync URLs: offline");

  const url = await call(
    page,
    () => hf.create({ title: "groceries", items: [], body: { $text: "hello" }, likes: { $counter: 0 } }),
    undefined,
    "create",
  );
  // Several changes, the last ones not awaited one by one: they are reported
  // together; everything resolved must be on disk.
  const expected = await call(
    page,
    async (url) => {
      await hf.change(url, (d) => d.items.push({ label: "milk", done: false }));
      await hf.change(url, (d) => d.body.insertAt(5, " world"));
      await Promise.all([
        hf.change(url, (d) => d.likes.increment(2)),
        hf.change(url, (d) => (d.items[0].done = true)),
        hf.change(url, (d) => d.items.push({ label: "eggs", done: false })),
      ]);
      return { doc: hf.doc(url), heads: hf.heads(url) };
    },
    url,
    "the changes to be durable",
  );
  assert.deepEqual(expected.doc, {
    title: "groceries",
    items: [
      { label: "milk", done: true },
      { label: "eggs", done: false },
    ],
    body: "hello world",
    likes: 2,
  });

  // Reload without closing the repo (as a user would): a fresh JS heap and
  // a fresh wasm instance; only IndexedDB carries over.
  await page.reload();
  await waitIn(page, () => window.hfReady === true, undefined, "the reloaded page");
  assert.equal(await call(page, () => hf.repo), null, "a fresh page");
  const after = await call(
    page,
    async (url) => {
      await hf.open("e2e-durable");
      await hf.find(url);
      return { doc: hf.doc(url), heads: hf.heads(url) };
    },
    url,
    "the reloaded page to find the document in IndexedDB",
  );
  assert.deepEqual(after.doc, expected.doc);
  assert.deepEqual([...after.heads].sort(), [...expected.heads].sort());

  assert.deepEqual(page.hfErrors, []);
  await page.context().close();
});

test("whenSynced rejects instead of hanging when the repo closes or the document is deleted", { timeout: 60_000 }, async () => {
  const page = await openPage(browser, server.http);
  const names = await call(
    page,
    async () => {
      // A sync server that never answers (nothing listens on port 1): the
      // repo keeps trying, neither document can ever be "on-server".
      await hf.open("e2e-when-synced", ["ws://127.0.0.1:1/sync"]);
      const kept = await hf.create({ n: 1 });
      const gone = await hf.create({ n: 2 });
      const pKept = hf.whenSynced(kept).then(() => "resolved", (e) => e.name);
      const pGone = hf.whenSynced(gone).then(() => "resolved", (e) => e.name);
      await hf.repo.delete(gone);
      await hf.close();
      return Promise.all([pKept, pGone]);
    },
    undefined,
    "pending whenSynced promises to settle",
  );
  assert.deepEqual(names, ["RepoClosedError", "DocumentDeletedError"]);
  // The browser logs each refused connection attempt; nothing else.
  assert.deepEqual(page.hfErrors.filter((e) => !/WebSocket connection to 'ws:\/\/127\.0\.0\.1:1\/sync' failed/.test(e)), []);
  await page.context().close();
});
