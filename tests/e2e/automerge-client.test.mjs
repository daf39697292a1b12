// An automerge-repo 2.5.6 client in node and a holdfast client in Chromium
// share a document through holdfast-server: edits (map, list and text)
// flow both ways.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as Automerge from "@automerge/automerge";
import { startServer, launchBrowser, openPage, call, waitIn, automergeClient, docCondition, eventually, plain } from "./harness.mjs";

let server, browser;
const clients = [];
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  for (const c of clients) await c.shutdown();
  await browser?.close();
  await server?.stop();
});

test("automerge-repo (node) → holdfast-server → holdfast (browser), and back", { timeout: 90_000 }, async () => {
  const node = automergeClient(server.ws);
  clients.push(node);
  const h = node.create({ title: "from automerge-repo", items: ["one"], note: "hello" });
  h.change((d) => d.items.push("two"));
  h.change((d) => Automerge.splice(d, ["note"], 5, 0, " world"));

  const page = await openPage(browser, server.http);
  await call(page, (ws) => hf.open("holdfast-browser", [ws]), server.ws, "the browser repo to open");
  await waitIn(page, () => hf.status() === "online", undefined, "the browser to be online");

  // The server answers doc-unavailable until the node client's push reached
  // it; ask again until it has it.
  await eventually("the browser to find the node client's document", () =>
    call(page, (url) => hf.find(url).then(() => true), h.url, "find"),
  );
  const expected = { title: "from automerge-repo", items: ["one", "two"], note: "hello world" };
  await waitIn(page, ([url, want]) => hf.docEquals(url, want), [h.url, expected], "the browser to see the node edits");
  assert.deepEqual(await call(page, (url) => hf.doc(url), h.url), expected);

  // The browser edits: a map key, the list, the text.
  await call(
    page,
    (url) =>
      hf.change(url, (d) => {
        d.title = "edited in the browser";
        d.items.push("three");
        d.note.insertAt(0, ">> ");
      }),
    h.url,
    "the browser edit to be durable",
  );
  const seen = await docCondition(
    h,
    (d) => d.title === "edited in the browser" && d.items.length === 3 && d.note === ">> hello world",
    "the node client to see the browser edit",
  );
  assert.deepEqual(seen, { title: "edited in the browser", items: ["one", "two", "three"], note: ">> hello world" });
  // The browser's edit is on the server's disk, and the two agree on heads
  // (automerge-repo's handle.heads() are bs58check; Automerge.getHeads is hex).
  await call(page, (url) => hf.whenSynced(url), h.url, "the browser's whenSynced");
  await waitIn(page, ([url, heads]) => hf.headsEqual(url, heads), [h.url, Automerge.getHeads(h.doc())], "equal heads");

  // Another edit from node, concurrent with one from the browser.
  h.change((d) => Automerge.splice(d, ["note"], d.note.length, 0, "!"));
  await call(page, (url) => hf.change(url, (d) => d.items.unshift("zero")), h.url, "a second browser edit");
  await waitIn(page, (url) => hf.doc(url).note === ">> hello world!", h.url, "the browser to see node's second edit");
  await docCondition(h, (d) => d.items[0] === "zero", "node to see the browser's second edit");
  await waitIn(page, ([url, heads]) => hf.headsEqual(url, heads), [h.url, Automerge.getHeads(h.doc())], "equal heads again");
  assert.deepEqual(await call(page, (url) => hf.doc(url), h.url), plain(h.doc()));
  assert.deepEqual(page.hfErrors, []);
  await page.context().close();
});
