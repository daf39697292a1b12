// The npm package against the real wasm engine (memory storage, in node):
// the public API as a user calls it. Needs `scripts/build-pkg.sh` first
// (make test does it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";

const wasm = new URL("../../pkg/wasm/holdfast_bg.wasm", import.meta.url);
if (!existsSync(wasm)) {
  throw new Error("pkg/wasm is not built: run scripts/build-pkg.sh --dev (make test does)");
}
const { Repo, Text, Counter } = await import("../../pkg/index.js");

test("create, change, events after durable, find, export/import, delete, close", async () => {
  const repo = await Repo.open({ memory: true });
  assert.equal(repo.durability, "memory");
  const h = await repo.create({ title: "", items: [], body: new Text("hello"), n: new Counter(1) });
  assert.match(h.url, /^automerge:/);
  const events = [];
  h.on("change", (e) => events.push(e));
  const p = h.change((d) => {
    d.title = "x";
    d.items.push(1, 2);
    d.body.splice(5, 0, " world");
    d.n.increment(2);
  });
  assert.equal(events.length, 0, "no change event before the commit completes");
  await p;
  assert.deepEqual(h.doc(), { title: "x", items: [1, 2], body: "hello world", n: 3 });
  assert.equal(events.length, 1);
  assert.equal(events[0].source, "local");
  assert.ok(events[0].patches.some((q) => q.action === "splice" && q.value === " world"));
  assert.equal(h.heads().length, 1);

  const same = await repo.find(h.url);
  assert.equal(same.documentId, h.documentId);

  const bytes = await repo.export(h.url);
  assert.ok(bytes instanceof Uint8Array && bytes.length > 0);
  const copy = await repo.import(bytes);
  assert.notEqual(copy.documentId, h.documentId);
  assert.deepEqual(copy.doc(), h.doc());

  await repo.delete(h.url);
  await assert.rejects(h.change((d) => { d.title = "y"; }), { name: "DocumentDeletedError" });
  await repo.close();
  await assert.rejects(copy.change((d) => { d.title = "y"; }), { name: "RepoClosedError" });
});

test("a throwing change callback rolls back and rejects", async () => {
  const repo = await Repo.open({ memory: true });
  const h = await repo.create({ v: 1 });
  await assert.rejects(h.change((d) => { d.v = 2; throw new Error("nope"); }), /nope/);
  assert.deepEqual(h.doc(), { v: 1 });
  await repo.close();
});

test("bad URLs and unknown documents get named errors", async () => {
  const repo = await Repo.open({ memory: true });
  await assert.rejects(repo.find("automerge:not-a-document"), { name: "InvalidDocumentUrlError" });
  // A valid id this repo never stored: no peers, so unavailable at once.
  const other = await Repo.open({ memory: true });
  const elsewhere = await other.create({ v: 1 });
  const t0 = Date.now();
  await assert.rejects(repo.find(elsewhere.url), { name: "DocumentUnavailableError" });
  assert.ok(Date.now() - t0 < 5_000, "without peers, find does not wait for the 30 s timeout");
  await other.close();
  await assert.rejects(Repo.open({}), { name: "TypeError" });
  await repo.close();
});

test("many changes in one tick all resolve, in order", async () => {
  const repo = await Repo.open({ memory: true });
  const h = await repo.create({ n: 0, log: [] });
  const order = [];
  await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      h.change((d) => { d.n = i + 1; d.log.push(i); }).then(() => order.push(i)),
    ),
  );
  assert.deepEqual(order, Array.from({ length: 100 }, (_, i) => i));
  assert.equal(h.doc().n, 100);
  assert.equal(h.doc().log.length, 100);
  await repo.close();
});

test("consecutive changes start from the handle's last draft; a throwing callback leaves nothing behind", async () => {
  const repo = await Repo.open({ memory: true });
  const h = await repo.create({ body: new Text("ab"), n: new Counter(0), list: [], m: { x: 0 } });
  for (let i = 0; i < 5; i++) {
    await h.change((d) => {
      d.body.insertAt(d.body.length, String(i));
      d.n.increment();
      d.list.push({ i });
      d.m.x = i;
    });
  }
  const expected = { body: "ab01234", n: 5, list: [0, 1, 2, 3, 4].map((i) => ({ i })), m: { x: 4 } };
  assert.deepEqual(h.doc(), expected);
  // Half-edits of a callback that throws must not reach the next change's draft.
  await assert.rejects(
    h.change((d) => {
      d.m.x = 99;
      d.body.insertAt(0, "Z");
      d.list.pop();
      throw new Error("changed my mind");
    }),
    /changed my mind/,
  );
  await h.change((d) => {
    assert.equal(d.m.x, 4);
    assert.equal(d.list.length, 5);
    d.body.insertAt(0, ">");
  });
  assert.deepEqual(h.doc(), { ...expected, body: ">ab01234" });
  // A Text read in an earlier change belongs to that change only.
  let kept;
  await h.change((d) => {
    kept = d.body;
  });
  assert.throws(() => kept.insertAt(0, "late"), /no longer live/);
  await repo.close();
});

test("doc() keeps every unchanged object across changes, and is frozen", async () => {
  const repo = await Repo.open({ memory: true });
  const h = await repo.create({ a: { x: 1, deep: { y: [1, 2] } }, b: { z: [{ k: 1 }, { k: 2 }] }, bytes: new Uint8Array([1, 2]), when: new Date(5) });
  const d1 = h.doc();
  assert.equal(h.doc(), d1, "the same object while the heads are unchanged");
  assert.ok(Object.isFrozen(d1) && Object.isFrozen(d1.a.deep.y) && Object.isFrozen(d1.b.z[1]));
  assert.throws(() => { d1.a.x = 2; }, TypeError);

  const events = [];
  h.on("change", (e) => events.push(e));
  await h.change((d) => { d.b.z[1].k = 3; });
  const d2 = h.doc();
  assert.notEqual(d2, d1);
  assert.deepEqual(d2.b.z, [{ k: 1 }, { k: 3 }]);
  // Only the path to the edit is new.
  assert.notEqual(d2.b, d1.b);
  assert.notEqual(d2.b.z, d1.b.z);
  assert.notEqual(d2.b.z[1], d1.b.z[1]);
  assert.equal(d2.b.z[0], d1.b.z[0]);
  assert.equal(d2.a, d1.a);
  assert.equal(d2.bytes, d1.bytes);
  assert.equal(d2.when, d1.when);
  // The change event's durable document is the same tree when nothing
  // unsaved lies beyond it.
  assert.equal(events.length, 1);
  assert.equal(events[0].doc, d2);

  // A deletion and an insertion: siblings stay shared, the old tree is untouched.
  await h.change((d) => { delete d.a.x; d.b.z.push({ k: 4 }); });
  const d3 = h.doc();
  assert.deepEqual(d3.a, { deep: { y: [1, 2] } });
  assert.equal(d3.a.deep, d1.a.deep);
  assert.equal(d3.b.z[1], d2.b.z[1]);
  assert.deepEqual(d2.b.z, [{ k: 1 }, { k: 3 }]);
  assert.equal(d1.a.x, 1);
  // A change that writes what is already there moves the heads only.
  await h.change((d) => { d.b.z[0].k = 1; });
  assert.equal(h.doc(), d3);
  await repo.close();
});

test("heads are bs58check UrlHeads; views at heads, from view() and from a URL with heads; repo.handles", async () => {
  const { encodeHeads, decodeHeads, DocView } = await import("../../pkg/index.js");
  const repo = await Repo.open({ memory: true });
  const h = await repo.create({ n: 1 });
  const first = h.heads();
  assert.equal(first.length, 1);
  assert.match(first[0], /^[1-9A-HJ-NP-Za-km-z]{40,50}$/, "bs58check, not hex");
  const hex = decodeHeads(first);
  assert.match(hex[0], /^[0-9a-f]{64}$/);
  assert.deepEqual(encodeHeads(hex), first);
  assert.deepEqual(encodeHeads(first), first);

  const second = await h.change((d) => { d.n = 2; });
  assert.deepEqual(second, h.heads(), "change resolves with the new UrlHeads");
  assert.notDeepEqual(second, first);

  // A view at the first heads, by either form, and through find.
  const v = h.view(first);
  assert.ok(v instanceof DocView && v.isReadOnly());
  assert.deepEqual(v.doc(), { n: 1 });
  assert.ok(Object.isFrozen(v.doc()));
  assert.deepEqual(h.view(hex).doc(), { n: 1 });
  assert.equal(v.url, `${h.url}#${first.join("|")}`);
  const found = await repo.find(v.url);
  assert.ok(found instanceof DocView);
  assert.deepEqual(found.doc(), { n: 1 });
  assert.deepEqual(found.heads(), first);
  assert.equal(found.handle, h);
  await assert.rejects(found.change((d) => { d.n = 3; }), { name: "ChangeRejectedError" });
  assert.deepEqual(h.doc(), { n: 2 }, "the document itself moved on");
  assert.throws(() => h.view(["not-a-head"]), { name: "InvalidHeadsError" });
  assert.throws(() => h.view(["f".repeat(64)]), { name: "DocumentUnavailableError" });

  // history: one entry per change, each the heads right after it.
  const history = h.history();
  assert.deepEqual(history, [first, second]);
  assert.deepEqual(h.view(history[0]).doc(), { n: 1 });
  // diff: the patches between two points, or up to now.
  assert.deepEqual(h.diff(first, second), [{ action: "put", path: ["n"], value: 2 }]);
  assert.deepEqual(h.diff(hex), h.diff(first, h.heads()));
  assert.deepEqual(h.diff(second), []);
  assert.throws(() => h.diff(["f".repeat(64)]), { name: "DocumentUnavailableError" });

  assert.deepEqual(Object.keys(repo.handles), [h.documentId]);
  assert.equal(repo.handles[h.documentId], h);
  await repo.close();
});

test("rich-text marks: mark and unmark inside change, read with marks(path), reported as mark patches", async () => {
  const repo = await Repo.open({ memory: true });
  const h = await repo.create({ body: new Text("hello 😀 world"), n: 1 });
  const events = [];
  h.on("change", (e) => events.push(e));
  await h.change((d) => {
    d.body.mark(0, 5, "bold", true);
    d.body.mark(6, 14, "link", "https://example.com", "none");
  });
  assert.deepEqual(h.marks(["body"]), [
    { name: "bold", value: true, start: 0, end: 5 },
    { name: "link", value: "https://example.com", start: 6, end: 14 },
  ]);
  assert.ok(events[0].patches.some((p) => p.action === "mark" && p.marks.some((m) => m.name === "bold")), JSON.stringify(events[0].patches));
  // Typing at the end of a mark that expands "after" extends it.
  await h.change((d) => {
    d.body.insertAt(5, "!");
    d.body.unmark(0, 2, "bold");
  });
  assert.deepEqual(h.marks(["body"]).find((m) => m.name === "bold"), { name: "bold", value: true, start: 2, end: 6 });
  assert.equal(h.doc().body, "hello! 😀 world", "doc() reads text as a string");
  // Misuse is refused, and nothing of that change is applied.
  const heads = h.heads();
  await assert.rejects(h.change((d) => d.body.mark(0, 99, "x", 1)), RangeError);
  await assert.rejects(h.change((d) => d.body.mark(7, 8, "x", 1)), { name: "ChangeRejectedError" }); // inside the emoji
  await assert.rejects(h.change((d) => d.body.mark(0, 1, "x", { not: "a scalar" })), { name: "ChangeRejectedError" });
  await assert.rejects(h.change((d) => new Text("new").mark(0, 1, "x", 1)), TypeError);
  assert.deepEqual(h.heads(), heads);
  assert.throws(() => h.marks(["n"]), { name: "InvalidOptionsError" });
  await repo.close();
});
