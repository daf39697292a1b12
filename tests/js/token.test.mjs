// The `sync` option's tokens, in the JS wrapper (against the fake WasmRepo:
// no wasm): `{ url, token }` reaches the engine as a `connectUrl` function
// that puts the token on the URL, calling a token function each time.
// The real reconnect, against holdfast-server with --auth-secret-file, is in
// tests/e2e/auth.test.mjs.
//   node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { Repo, syncServers, withToken } from "../../pkg/index.js";
import { FakeWasmRepo, binding } from "./fake-wasm.mjs";

test("withToken sets ?token=, URL-encoded, keeping the rest of the query", () => {
  assert.equal(withToken("ws://h:1/sync", "a.b-c_d"), "ws://h:1/sync?token=a.b-c_d");
  assert.equal(withToken("wss://h/x?room=1", "t"), "wss://h/x?room=1&token=t");
  assert.equal(withToken("ws://h/?token=old&a=1", "new"), "ws://h/?token=new&a=1");
  assert.equal(new URL(withToken("ws://h/", "a b&c=d")).searchParams.get("token"), "a b&c=d");
});

test("sync entries: URLs stay URLs; tokens become connectUrl functions", async () => {
  assert.deepEqual(syncServers(undefined), []);
  assert.deepEqual(syncServers("ws://a/"), ["ws://a/"]);
  assert.deepEqual(syncServers(["ws://a/", { url: "ws://b/" }]), ["ws://a/", "ws://b/"]);
  const [fixed] = syncServers({ url: "ws://a/", token: "tok" });
  assert.equal(fixed.url, "ws://a/");
  assert.equal(await fixed.connectUrl(), "ws://a/?token=tok");

  let calls = 0;
  const [fresh] = syncServers([{ url: "ws://a/s", token: async () => `t${++calls}` }]);
  assert.equal(await fresh.connectUrl(), "ws://a/s?token=t1");
  assert.equal(await fresh.connectUrl(), "ws://a/s?token=t2", "called again on every connection");
  const [sync] = syncServers([{ url: "ws://a/", token: () => "plain" }]);
  assert.equal(await sync.connectUrl(), "ws://a/?token=plain");

  const [none] = syncServers([{ url: "ws://a/", token: () => undefined }]);
  await assert.rejects(none.connectUrl(), /not a string/);
  assert.throws(() => syncServers([{ url: "ws://a/", token: 42 }]), TypeError);
  assert.throws(() => syncServers([{ token: "t" }]), TypeError);
  assert.throws(() => syncServers([7]), TypeError);
});

test("Repo.open hands the engine the normalized servers", async () => {
  const token = () => "abc";
  const repo = await Repo.open({ memory: true, _binding: binding, sync: [{ url: "ws://h/", token }, "ws://g/"] });
  const opts = FakeWasmRepo.opened.at(-1).opts;
  assert.equal(opts.sync.length, 2);
  assert.equal(opts.sync[0].url, "ws://h/");
  assert.equal(await opts.sync[0].connectUrl(), "ws://h/?token=abc");
  assert.equal(opts.sync[1], "ws://g/");
  assert.equal(repo.syncing, true);
  await repo.close();
});
