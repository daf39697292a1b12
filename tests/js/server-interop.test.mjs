// The real automerge-repo 2.5.6 (node, its WebSocket client adapter) against
// holdfast-server: documents created and edited by one automerge-repo client
// are served to another, and survive a server restart (they were fsynced
// before the server acknowledged them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

import { startServer } from "./server.mjs";

function client(url) {
  const adapter = new WebSocketClientAdapter(url);
  return new Repo({ network: [adapter] });
}

async function until(what, f, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("automerge-repo clients sync through holdfast-server, and the data survives a restart", async () => {
  const data = mkdtempSync(join(tmpdir(), "holdfast-interop-"));
  let server = await startServer(data);
  const a = client(server.url);
  const h = a.create({ title: "from automerge-repo", items: [] });
  h.change((d) => d.items.push("one"));
  h.change((d) => d.items.push("two"));

  // A second automerge-repo client finds it through the server (once a's
  // push reached it: until then the server answers doc-unavailable).
  const b = client(server.url);
  const hb = await until("the server to have a's document", () => b.find(h.url).catch(() => null));
  await until("b to see both edits", () => hb.doc()?.items?.length === 2);
  assert.deepEqual(hb.doc(), { title: "from automerge-repo", items: ["one", "two"] });

  // Edits flow back from b to a.
  hb.change((d) => (d.title = "edited by b"));
  await until("a to see b's edit", () => h.doc().title === "edited by b");

  // Stop gracefully; start again on the same data: the document is there.
  await until("the server to hold b's edit", async () => {
    const c = client(server.url);
    const hc = await c.find(h.url).catch(() => null);
    const ok = hc?.doc()?.title === "edited by b";
    c.shutdown();
    return ok;
  });
  a.shutdown();
  b.shutdown();
  const stopped = await server.stop();
  assert.equal(stopped.code, 0, `clean exit on SIGINT: ${server.stderr()}`);

  server = await startServer(data);
  const c = client(server.url);
  const hc = await c.find(h.url);
  await until("the restarted server to serve it", () => hc.doc()?.title === "edited by b");
  assert.deepEqual(hc.doc().items, ["one", "two"]);
  c.shutdown();
  await server.stop();
});

// Every kind of operation automerge 3 makes (text splices and deletions,
// marks and unmarks, counters, list inserts and deletions, nested objects,
// key deletions, dates, bytes, floats, nulls, a long string, concurrent
// edits) passes holdfast-server's checks of peer input: none is refused,
// and a third client gets the merged document through the server.
test("every kind of automerge-repo edit passes the server's checks", async () => {
  const A = await import("@automerge/automerge");
  const data = mkdtempSync(join(tmpdir(), "holdfast-interop-ops-"));
  const server = await startServer(data);
  const a = client(server.url);
  const h = a.create({ text: "hello world", items: [1, 2, 3], meta: { count: new A.Counter(0) } });
  h.change((d) => {
    A.splice(d, ["text"], 5, 0, " big");
    d.items.push({ nested: { deep: [true] } });
    d.items.splice(0, 1);
    d.meta.count.increment(5);
    d.gone = "soon";
  });
  h.change((d) => {
    delete d.gone;
    A.mark(d, ["text"], { start: 0, end: 5, expand: "both" }, "bold", true);
  });
  h.change((d) => {
    A.unmark(d, ["text"], { start: 1, end: 3, expand: "none" }, "bold");
    d.big = "z".repeat(5000);
    d.when = new Date(5);
    d.bytes = new Uint8Array([1, 2, 3]);
    d.f = 1.5;
    d.nothing = null;
  });
  const b = client(server.url);
  const hb = await until("b to find it", () => b.find(h.url).catch(() => null));
  await until("b to see a's edits", () => hb.doc()?.f === 1.5);
  // Concurrent edits on both sides of the same text and counter.
  h.change((d) => {
    A.splice(d, ["text"], 0, 3);
    d.meta.count.increment(1);
  });
  hb.change((d) => {
    A.splice(d, ["text"], 2, 1, "Q");
    d.meta.count.increment(2);
    d.items.insertAt(0, "first");
  });
  const want = (doc) => doc?.meta?.count?.value === 8 && doc?.items?.[0] === "first" && !doc.text.startsWith("hel");
  await until("a and b to converge", () => want(h.doc()) && want(hb.doc()));
  const c = client(server.url);
  const hc = await until("c to find it", () => c.find(h.url).catch(() => null));
  await until("c to get the merged document", () => want(hc.doc()));
  assert.deepEqual(hc.doc(), h.doc());
  assert.deepEqual(A.getHeads(hc.doc()), A.getHeads(h.doc()));
  assert.doesNotMatch(server.stderr(), /refus|Refused|panick/i, server.stderr());
  for (const r of [a, b, c]) r.shutdown();
  await server.stop();
});
