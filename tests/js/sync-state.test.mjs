// The npm package against the real wasm engine in node, syncing through a
// real holdfast-server on 127.0.0.1: a repo that only RECEIVES a document
// (finds it; edits nothing) is told it is on the server. Issue 10, point 5:
// the engine reports the coverage while `find` is still waiting for the
// document, before the handle exists; the handle must start from it.
// Needs `scripts/build-pkg.sh --dev` and `cargo build -p holdfast-server`
// (make test does both).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { within } from "./node-ws.mjs"; // (also installs a WebSocket for the wasm module)
import { startServer } from "./server.mjs";

const root = new URL("../../", import.meta.url).pathname;
const wasm = join(root, "pkg", "wasm", "holdfast_bg.wasm");
if (!existsSync(wasm)) throw new Error("pkg/wasm is not built: run scripts/build-pkg.sh --dev (make test does)");

const { Repo } = await import("../../pkg/index.js");

/** Resolves once `now()` is true: at once, or after one of `emitter`'s
 * `event`s. */
function until(emitter, event, now, what) {
  if (now()) return Promise.resolve();
  return within(
    new Promise((resolve) => {
      const check = () => {
        if (!now()) return;
        emitter.off(event, check);
        resolve();
      };
      emitter.on(event, check);
    }),
    what,
  );
}

let server, data;
before(async () => {
  data = mkdtempSync(join(tmpdir(), "holdfast-sync-state-"));
  server = await within(startServer(data), "holdfast-server to listen");
});
after(async () => {
  await server?.stop();
  if (data) rmSync(data, { recursive: true, force: true });
});

test("a repo that only finds a document is told it is on the server, without editing", async () => {
  const a = await Repo.open({ memory: true, sync: server.url });
  const b = await Repo.open({ memory: true, sync: server.url });
  try {
    const ha = await a.create({ title: "made by a", items: [1, 2] });
    await ha.change((d) => d.items.push(3));
    await within(ha.whenSynced(), "a's document to reach the server");
    assert.equal(ha.syncState, "on-server");

    // b has nothing: everything it gets comes from the server.
    const states = [];
    const hb = await within(b.find(ha.url), "b to find a's document");
    hb.on("sync-state", (e) => states.push(e.state));
    assert.deepEqual(hb.doc(), { title: "made by a", items: [1, 2, 3] });
    assert.deepEqual(hb.heads(), ha.heads(), "b holds exactly a's changes");
    // Right from the moment find resolves (the engine's report came while
    // find was still waiting for the document).
    assert.equal(hb.syncState, "on-server", "syncState when find resolved");
    await within(hb.whenSynced(), "b's whenSynced() without b editing");

    // A second find of the same document gets the same state.
    const again = await b.find(ha.url);
    assert.equal(again.syncState, "on-server");

    // Offline it is no longer known to be on a server; back online the
    // server's heads cover b's again, still without b editing.
    b.goOffline();
    await until(b, "peer", () => b.peers.length === 0, "b to drop its peer");
    assert.equal(hb.syncState, "local-only");
    b.goOnline();
    await until(hb, "sync-state", () => hb.syncState === "on-server", "b to be on-server again after reconnecting");
    await within(hb.whenSynced(), "whenSynced after reconnecting");
    assert.deepEqual(hb.heads(), ha.heads(), "b still made no change");
    assert.equal(states[0], "local-only", "told when it went offline");
    assert.equal(states.at(-1), "on-server", "told when it was on the server again");
  } finally {
    await a.close();
    await b.close();
  }
});

test("a document received while a handle for another one is open: each handle starts from its own state", async () => {
  const a = await Repo.open({ memory: true, sync: server.url });
  const b = await Repo.open({ memory: true, sync: server.url });
  try {
    const mine = await b.create({ by: "b" });
    await within(mine.whenSynced(), "b's own document to reach the server");
    const theirs = await a.create({ by: "a" });
    await within(theirs.whenSynced(), "a's document to reach the server");
    const found = await within(b.find(theirs.url), "b to find a's document");
    assert.equal(found.syncState, "on-server");
    assert.equal(mine.syncState, "on-server");
    // b edits its own document offline: only that one leaves the server.
    b.goOffline();
    await until(b, "peer", () => b.peers.length === 0, "b to drop its peer");
    await mine.change((d) => (d.by = "b, offline"));
    assert.equal(mine.syncState, "local-only");
    b.goOnline();
    await within(Promise.all([mine.whenSynced(), found.whenSynced()]), "both documents on the server after reconnecting");
    assert.deepEqual(found.heads(), theirs.heads());
  } finally {
    await a.close();
    await b.close();
  }
});
