// Ephemeral messages between automerge-repo 2.5.6 and holdfast, both in
// node, through a real holdfast-server on 127.0.0.1: each side's
// `broadcast(value)` reaches the other as the same value (CBOR, encoded as
// automerge-repo encodes it), in both directions. Needs
// `scripts/build-pkg.sh --dev` and `cargo build -p holdfast-server`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Repo as AmRepo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import { within } from "./node-ws.mjs"; // (also installs a WebSocket for the wasm module)
import { startServer } from "./server.mjs";

const wasm = new URL("../../pkg/wasm/holdfast_bg.wasm", import.meta.url);
if (!existsSync(wasm)) throw new Error("pkg/wasm is not built: run scripts/build-pkg.sh --dev (make test does)");

const { Repo } = await import("../../pkg/index.js");

/**
 * Broadcast `value` from `send` until `receiver` emits `event` (ephemeral
 * messages are not queued: one sent before the server knows the receiver
 * wants the document is dropped), resolving with the event's payload.
 */
function deliver(send, receiver, event, what) {
  let timer;
  const got = new Promise((resolve) => {
    receiver.once(event, resolve);
  });
  const again = () => {
    send();
    timer = setTimeout(again, 200);
  };
  again();
  return within(got, what).finally(() => clearTimeout(timer));
}

/** Byte strings compared by content (cbor-x in node decodes them as Buffers). */
const plainBytes = (v) =>
  v instanceof Uint8Array ? [...v] : Array.isArray(v) ? v.map(plainBytes) : v && typeof v === "object" && !(v instanceof Date) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainBytes(x)])) : v;

let server, data;
before(async () => {
  data = mkdtempSync(join(tmpdir(), "holdfast-ephemeral-"));
  server = await within(startServer(data), "holdfast-server to listen");
});
after(async () => {
  await server?.stop();
  if (data) rmSync(data, { recursive: true, force: true });
});

test("automerge-repo and holdfast clients exchange ephemeral messages through holdfast-server, both directions", async () => {
  const hf = await Repo.open({ memory: true, sync: server.url });
  const am = new AmRepo({ network: [new WebSocketClientAdapter(server.url)] });
  try {
    const h = await hf.create({ title: "presence" });
    await within(h.whenSynced(), "the document to reach the server");
    const ha = await within(am.find(h.url), "automerge-repo to find it");

    const cursor = {
      user: "ann",
      cursor: { line: 3, column: 14.5 },
      selection: [1, -2, 2 ** 40, null, true, false],
      avatar: new Uint8Array([1, 2, 255]),
      at: new Date(1_700_000_000_000),
      empty: {},
      unicode: "żółw 🐢",
    };

    // automerge-repo -> holdfast: the decoded value, and the raw bytes.
    const raw = new Promise((resolve) => h.once("ephemeral", resolve));
    const fromAm = await deliver(() => ha.broadcast(cursor), h, "ephemeral-message", "holdfast to receive automerge-repo's broadcast");
    assert.equal(fromAm.handle, h);
    assert.equal(typeof fromAm.senderId, "string");
    assert.deepEqual(plainBytes(fromAm.message), plainBytes(cursor));
    assert.ok(fromAm.message.at instanceof Date && fromAm.message.avatar instanceof Uint8Array);
    assert.ok((await raw).data instanceof Uint8Array);

    // holdfast -> automerge-repo: cbor-x decodes what holdfast encoded.
    const back = { ...cursor, user: "bob", list: [[1, [2, [3]]], "x"] };
    const fromHf = await deliver(() => h.broadcast(back), ha, "ephemeral-message", "automerge-repo to receive holdfast's broadcast");
    assert.equal(typeof fromHf.senderId, "string");
    assert.deepEqual(plainBytes(fromHf.message), plainBytes(back));
    assert.ok(fromHf.message.at instanceof Date);

    // What has no CBOR form is refused at the call.
    assert.throws(() => h.broadcast({ f() {} }), TypeError);
    const cyclic = {};
    cyclic.self = cyclic;
    assert.throws(() => h.broadcast(cyclic), /nested more than/);
  } finally {
    am.shutdown();
    await hf.close();
  }
});
