// Two browser contexts (two devices: separate IndexedDB databases) sync
// through holdfast-server, go offline, edit the same text and map
// concurrently, come back online and converge to the same document, with
// both edits in it and on the server's disk (whenSynced).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, openPage, call, waitIn } from "./harness.mjs";

let server, browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const sorted = (xs) => [...xs].sort();

test("two contexts edit offline, reconnect and converge", { timeout: 90_000 }, async () => {
  const a = await openPage(browser, server.http);
  const b = await openPage(browser, server.http);
  for (const [page, db] of [
    [a, "device-a"],
    [b, "device-b"],
  ]) {
    await call(page, ([db, url]) => hf.open(db, [url]), [db, server.ws], `${db} to open`);
    await waitIn(page, () => hf.status() === "online", undefined, `${db} to be online`);
  }

  // A creates the document; once it is on the server's disk B finds it.
  const url = await call(
    a,
    async () => {
      const url = await hf.create({ title: "notes", body: { $text: "hello world" }, meta: {} });
      await hf.whenSynced(url);
      return url;
    },
    undefined,
    "A's document to reach the server",
  );
  assert.equal(await call(a, (url) => hf.syncState(url), url), "on-server");
  await call(b, (url) => hf.find(url), url, "B to find A's document");
  assert.deepEqual(await call(b, (url) => hf.doc(url), url), { title: "notes", body: "hello world", meta: {} });

  // Both go offline.
  for (const page of [a, b]) {
    await call(page, () => hf.goOffline());
    assert.equal(await call(page, () => hf.status()), "offline");
    assert.equal(await call(page, () => hf.statuses().at(-1)), "offline", "a status event said offline");
  }
  const offlineAt = await Promise.all([a, b].map((p) => call(p, () => hf.statuses().length)));

  // Concurrent edits: A inserts at the start, B appends at the end; each
  // sets its own map key and both set the same one.
  const headsA = await call(
    a,
    (url) =>
      hf.change(url, (d) => {
        d.body.insertAt(0, "A> ");
        d.meta.a = "from A";
        d.meta.both = "A";
      }),
    url,
    "A's offline edit to be durable",
  );
  const headsB = await call(
    b,
    (url) =>
      hf.change(url, (d) => {
        d.body.insertAt(d.body.length, " <B");
        d.meta.b = "from B";
        d.meta.both = "B";
      }),
    url,
    "B's offline edit to be durable",
  );
  // Offline, each sees only its own edit.
  assert.equal((await call(a, (url) => hf.doc(url), url)).body, "A> hello world");
  assert.equal((await call(b, (url) => hf.doc(url), url)).body, "hello world <B");
  assert.equal(await call(a, (url) => hf.syncState(url), url), "local-only");
  assert.equal(await call(b, (url) => hf.syncState(url), url), "local-only");

  // Back online: each converges to heads = {A's change, B's change}.
  for (const page of [a, b]) await call(page, () => hf.goOnline());
  const merged = sorted([...headsA, ...headsB]);
  for (const [name, page] of [
    ["A", a],
    ["B", b],
  ]) {
    await waitIn(
      page,
      ([url, merged]) => hf.headsEqual(url, merged),
      [url, merged],
      `${name} to have both edits`,
    );
  }
  const docA = await call(a, (url) => hf.doc(url), url);
  const docB = await call(b, (url) => hf.doc(url), url);
  assert.deepEqual(docA, docB, "the two devices converged");
  assert.equal(docA.body, "A> hello world <B");
  assert.equal(docA.title, "notes");
  assert.equal(docA.meta.a, "from A");
  assert.equal(docA.meta.b, "from B");
  assert.ok(["A", "B"].includes(docA.meta.both), `a concurrent put picks one winner: ${docA.meta.both}`);

  // Both devices' work is on the server's disk.
  await Promise.all([
    call(a, (url) => hf.whenSynced(url), url, "A's whenSynced"),
    call(b, (url) => hf.whenSynced(url), url, "B's whenSynced"),
  ]);
  for (const [page, from] of [
    [a, offlineAt[0]],
    [b, offlineAt[1]],
  ]) {
    assert.equal(await call(page, (url) => hf.syncState(url), url), "on-server");
    assert.equal(await call(page, () => hf.status()), "online");
    const statuses = await call(page, () => hf.statuses());
    assert.equal(statuses[from - 1], "offline");
    assert.equal(statuses.at(-1), "online", `went offline → online: ${statuses.join(" → ")}`);
    // The remote edit was announced by a change event (after it was durable).
    const remote = await call(page, (url) => hf.log.filter((e) => e.type === "change" && e.url === url && e.source !== "local").length, url);
    assert.ok(remote >= 1, "a change event for the remote edit");
    assert.deepEqual(page.hfErrors, []);
  }

  // A third device (fresh context) gets the merged document from the server alone.
  const c = await openPage(browser, server.http);
  await call(c, (url) => hf.open("device-c", [url]), server.ws, "C to open");
  await call(c, (url) => hf.find(url), url, "C to find the document on the server");
  await waitIn(c, ([url, merged]) => hf.headsEqual(url, merged), [url, merged], "C to have both edits");
  assert.deepEqual(await call(c, (url) => hf.doc(url), url), docA);

  for (const page of [a, b, c]) await page.context().close();
});
