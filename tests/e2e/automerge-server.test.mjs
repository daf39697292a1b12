// A holdfast client in Chromium syncs with an automerge-repo 2.5.6 sync
// server in node (set up like automerge-repo's sync-server example: a `ws`
// WebSocketServer, NodeWSServerAdapter, sharePolicy false); a second
// automerge-repo client of that server sees the browser's document, and the
// browser sees that client's edit.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import * as Automerge from "@automerge/automerge";
import { WebSocketServer } from "ws";
import { Repo } from "@automerge/automerge-repo";
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket";
import { startServer, launchBrowser, openPage, call, waitIn, automergeClient, tolerateSocketErrors, docCondition, eventually } from "./harness.mjs";

let statics, browser, wss, syncServer;
const clients = [];
before(async () => {
  statics = await startServer(); // only serves the page; the page syncs with the node server
  browser = await launchBrowser();
  wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  tolerateSocketErrors(wss);
  await once(wss, "listening");
  syncServer = new Repo({
    network: [new NodeWSServerAdapter(wss)],
    peerId: "automerge-repo-sync-server",
    sharePolicy: async () => false,
  });
});
after(async () => {
  for (const c of clients) await c.shutdown();
  await browser?.close();
  await syncServer?.shutdown();
  if (wss) {
    for (const s of wss.clients) s.terminate();
    await new Promise((resolve) => wss.close(resolve));
  }
  await statics?.stop();
});

test("holdfast (browser) ↔ automerge-repo sync server ↔ automerge-repo client", { timeout: 90_000 }, async () => {
  const port = wss.address().port;
  const syncUrl = `ws://127.0.0.1:${port}`;

  const page = await openPage(browser, statics.http);
  await call(page, (url) => hf.open("holdfast-vs-automerge-server", [url]), syncUrl, "the browser repo to open");
  await waitIn(page, () => hf.status() === "online", undefined, "the browser to complete the handshake with automerge-repo");
  const peers = await call(page, () => hf.peers());
  assert.deepEqual(peers, ["automerge-repo-sync-server"]);

  const url = await call(
    page,
    async () => {
      const url = await hf.create({ title: "from holdfast", tags: ["a"], body: { $text: "typed in a browser" } });
      await hf.change(url, (d) => {
        d.tags.push("b");
        d.body.insertAt(0, "[draft] ");
      });
      return url;
    },
    undefined,
    "the browser's document to be durable",
  );

  // The automerge-repo server received it (holdfast announces its documents
  // to servers): a second client finds it there.
  const node = automergeClient(syncUrl);
  clients.push(node);
  const expected = { title: "from holdfast", tags: ["a", "b"], body: "[draft] typed in a browser" };
  const h = await eventually("the node client to find the browser's document", () => node.find(url));
  const seen = await docCondition(h, (d) => d.tags?.length === 2 && d.body === expected.body, "the node client to see the browser's edits");
  assert.deepEqual(seen, expected);
  // Text written with holdfast's Text is automerge text: splice works on it.
  h.change((d) => {
    Automerge.splice(d, ["body"], 0, 8, "");
    d.tags.push("from node");
    d.title = "edited by an automerge-repo client";
  });

  const want = { title: "edited by an automerge-repo client", tags: ["a", "b", "from node"], body: "typed in a browser" };
  await waitIn(page, ([url, want]) => hf.docEquals(url, want), [url, want], "the browser to see the node client's edit");
  await waitIn(page, ([url, heads]) => hf.headsEqual(url, heads), [url, Automerge.getHeads(h.doc())], "equal heads");
  // The edit reached the browser as a durable remote change.
  const remote = await call(page, (url) => hf.log.some((e) => e.type === "change" && e.url === url && e.source !== "local"), url);
  assert.ok(remote, "a remote change event");
  assert.deepEqual(page.hfErrors, []);
  await page.context().close();
});
