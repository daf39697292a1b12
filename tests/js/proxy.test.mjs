// The JS wrapper and its change recording, against a fake WasmRepo (no wasm).
//   node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { Counter, Repo, Text, parseUrl } from "../../pkg/index.js";
import { TYPE, UnknownValue, recordChange } from "../../pkg/draft.js";
import { FakeWasmRepo, applyOps, binding } from "./fake-wasm.mjs";

async function open() {
  const repo = await Repo.open({ memory: true, _binding: binding });
  return { repo, fake: FakeWasmRepo.opened.at(-1) };
}

/** Record fn on a copy of draft, apply the ops to another copy, and check
 * that both give the same result (the ops say exactly what fn did). */
function roundTrip(draft, fn) {
  let after;
  const ops = recordChange(structuredClone(draft), (d) => {
    fn(d);
    after = JSON.parse(JSON.stringify(d));
  });
  const applied = structuredClone(draft);
  applyOps(applied, ops);
  const plain = (v) => JSON.parse(JSON.stringify(v, (_, x) => (x && x[TYPE] ? x.value : x)));
  assert.deepEqual(plain(applied), after, `ops ${JSON.stringify(ops)}`);
  return { ops, applied };
}

test("nested maps and lists", async () => {
  const { repo, fake } = await open();
  const h = await repo.create({ title: "", items: [] });
  assert.deepEqual(h.doc(), { title: "", items: [] });
  await h.change((d) => {
    d.title = "x";
    d.items.push(1, { a: { b: [1] } });
    d.items[1].a.b.push(2);
    d.meta = { tags: ["t"] };
    d.meta.tags[0] = "u";
  });
  assert.deepEqual(h.doc(), { title: "x", items: [1, { a: { b: [1, 2] } }], meta: { tags: ["u"] } });
  assert.deepEqual(fake.sent.at(-1), [
    { op: "put", path: [], key: "title", value: "x" },
    { op: "insert", path: ["items"], index: 0, values: [1, { a: { b: [1] } }] },
    { op: "insert", path: ["items", 1, "a", "b"], index: 1, values: [2] },
    { op: "put", path: [], key: "meta", value: { tags: ["t"] } },
    { op: "put", path: ["meta", "tags"], key: 0, value: "u" },
  ]);
});

test("list methods: push, pop, shift, unshift, splice, index assignment, length", () => {
  const draft = { l: ["a", "b", "c", "d", "e"] };
  const { ops } = roundTrip(draft, (d) => {
    assert.equal(d.l.pop(), "e");
    assert.equal(d.l.shift(), "a");
    assert.equal(d.l.unshift("z", "y"), 5);
    assert.deepEqual(d.l.splice(1, 2, "Q"), ["y", "b"]);
    d.l[0] = "Z";
    d.l[d.l.length] = "end";
    d.l.insertAt(1, "i1", "i2");
    d.l.deleteAt(0);
    assert.deepEqual(d.l.splice(-2), ["d", "end"]);
    d.l.push({ x: 1 });
    d.l.length = 4;
    delete d.l[0];
  });
  assert.deepEqual(ops[0], { op: "del", path: ["l"], key: 4 });
  assert.deepEqual(ops[3], { op: "del", path: ["l"], key: 1, count: 2 });
  assert.throws(() => recordChange(draft, (d) => (d.l[9] = 1)), RangeError);
  assert.throws(() => recordChange(draft, (d) => d.l.sort()), TypeError);
});

test("randomized list edits match a plain array", () => {
  let seed = 12345;
  const rnd = (n) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    const start = Array.from({ length: rnd(6) }, (_, i) => i);
    const script = Array.from({ length: 1 + rnd(6) }, () => [rnd(7), rnd(8) - 2, rnd(4), rnd(100)]);
    const run = (arr) => {
      for (const [kind, a, b, v] of script) {
        if (kind === 0) arr.push(v, v + 1);
        else if (kind === 1) arr.pop();
        else if (kind === 2) arr.shift();
        else if (kind === 3) arr.unshift(v);
        else if (kind === 4) arr.splice(a, b, v);
        else if (kind === 5 && arr.length > 0) arr[Math.abs(a) % arr.length] = v;
        else arr.splice(a);
      }
      return arr;
    };
    const expected = run([...start]);
    const { applied } = roundTrip({ l: start }, (d) => run(d.l));
    assert.deepEqual(applied.l, expected, `seed state ${seed} script ${JSON.stringify(script)}`);
  }
});

test("delete on maps; deleting an absent key records nothing", () => {
  const { ops, applied } = roundTrip({ a: 1, b: { c: 2 } }, (d) => {
    delete d.a;
    delete d.nope;
    delete d.b.c;
    assert.equal("a" in d, false);
    assert.deepEqual(Object.keys(d), ["b"]);
  });
  assert.deepEqual(ops, [
    { op: "del", path: [], key: "a" },
    { op: "del", path: ["b"], key: "c" },
  ]);
  assert.deepEqual(applied, { b: {} });
});

test("text: splice, insertAt, deleteAt, toString, length", async () => {
  const { repo, fake } = await open();
  const h = await repo.create({ body: new Text("hello"), list: [new Text("a")] });
  assert.deepEqual(h.doc(), { body: "hello", list: ["a"] });
  await h.change((d) => {
    assert.ok(d.body instanceof Text);
    assert.equal(d.body.length, 5);
    d.body.splice(5, 0, " world");
    d.body.insertAt(0, ">", ">");
    d.body.deleteAt(0);
    assert.equal(d.body.toString(), ">hello world");
    assert.equal(`${d.body}`, ">hello world");
    assert.equal(d.body.length, 12);
    d.list[0].splice(1, 0, "b");
    d.copy = d.body; // assigning an existing text copies it
    d.body.splice(0, 1);
  });
  assert.deepEqual(h.doc(), { body: "hello world", list: ["ab"], copy: ">hello world" });
  assert.deepEqual(fake.sent.at(-1), [
    { op: "splice", path: ["body"], index: 5, del: 0, text: " world" },
    { op: "splice", path: ["body"], index: 0, del: 0, text: ">>" },
    { op: "splice", path: ["body"], index: 0, del: 1, text: "" },
    { op: "splice", path: ["list", 0], index: 1, del: 0, text: "b" },
    { op: "put", path: [], key: "copy", value: { [TYPE]: "text", value: ">hello world" } },
    { op: "splice", path: ["body"], index: 0, del: 1, text: "" },
  ]);
  await assert.rejects(h.change((d) => d.body.splice(99, 0, "x")), RangeError);
});

test("counters: increment, decrement, value", async () => {
  const { repo, fake } = await open();
  const h = await repo.create({ c: new Counter(1), nested: { n: [new Counter()] } });
  await h.change((d) => {
    assert.equal(d.c.increment(5), 6);
    d.c.decrement();
    assert.equal(d.c.value, 5);
    assert.equal(d.c + 1, 6);
    d.nested.n[0].increment();
  });
  assert.deepEqual(h.doc(), { c: 5, nested: { n: [1] } });
  assert.deepEqual(fake.sent.at(-1), [
    { op: "inc", path: [], key: "c", by: 5 },
    { op: "inc", path: [], key: "c", by: -1 },
    { op: "inc", path: ["nested", "n"], key: 0, by: 1 },
  ]);
  assert.throws(() => new Counter(1.5), TypeError);
});

test("a throwing callback sends nothing and rejects with its error", async () => {
  const { repo, fake } = await open();
  const h = await repo.create({ x: 0 });
  const boom = new Error("boom");
  await assert.rejects(
    h.change((d) => {
      d.x = 1;
      d.y = [1];
      throw boom;
    }),
    (e) => e === boom,
  );
  assert.equal(fake.sent.length, 0);
  assert.deepEqual(h.doc(), { x: 0 });
  await assert.rejects(h.change((d) => (d.u = undefined)), TypeError);
  await assert.rejects(h.change(async (d) => (d.x = 2)), TypeError);
  assert.equal(fake.sent.length, 0);
  await h.change((d) => (d.x = 3));
  assert.deepEqual(h.doc(), { x: 3 });
});

test("reads inside the callback see its writes", () => {
  recordChange({ items: [], a: { n: 1 } }, (d) => {
    d.items.push(1);
    assert.equal(d.items.length, 1);
    assert.equal(d.items[0], 1);
    assert.deepEqual([...d.items], [1]);
    d.o = { b: { c: 1 } };
    d.o.b.c = 2;
    assert.equal(d.o.b.c, 2);
    assert.ok(d.items.includes(1));
    assert.equal(d.items.indexOf(1), 0);
    assert.equal(d.items.map((x) => x * 2)[0], 2);
    assert.equal(d.a === d.a, true);
    assert.equal(JSON.stringify(d), '{"items":[1],"a":{"n":1},"o":{"b":{"c":2}}}');
    d.when = new Date(5);
    assert.equal(d.when.getTime(), 5);
  });
});

test("paths follow list elements that move; detached objects throw", () => {
  const { ops } = roundTrip({ l: [{ n: 1 }, { n: 2 }] }, (d) => {
    const second = d.l[1];
    d.l.unshift({ n: 0 });
    second.n = 22;
  });
  assert.deepEqual(ops.at(-1), { op: "put", path: ["l", 2], key: "n", value: 22 });
  assert.throws(
    () =>
      recordChange({ a: { n: 1 } }, (d) => {
        const a = d.a;
        d.a = { n: 2 };
        a.n = 3;
      }),
    /no longer in the document/,
  );
  // Assigning an object already in the document copies it.
  const { applied } = roundTrip({ a: { n: 1 } }, (d) => {
    d.b = d.a;
    d.a.n = 2;
    assert.equal(d.b.n, 1);
  });
  assert.deepEqual(applied, { a: { n: 2 }, b: { n: 1 } });
});

test("the draft is dead once the callback returns", async () => {
  let kept;
  recordChange({ l: [], t: { [TYPE]: "text", value: "" } }, (d) => {
    kept = d;
  });
  assert.throws(() => (kept.x = 1), /no longer live/);
  assert.throws(() => kept.l.push(1), /no longer live/);
  assert.throws(() => kept.t.splice(0, 0, "x"), /no longer live/);
});

test("values: dates, bytes, null, numbers, __proto__ keys", () => {
  const { ops } = roundTrip({}, (d) => {
    d.bytes = new Uint8Array([1, 2]);
    d.date = new Date(1000);
    d.n = null;
    d.f = 1.5;
    d.obj = JSON.parse('{"__proto__": {"x": 1}}');
    d.fake = { $holdfast: "text", value: "hi" };
    d.t = new Text("hi");
  });
  assert.ok(ops[0].value instanceof Uint8Array);
  assert.ok(ops[1].value instanceof Date);
  assert.deepEqual(Object.keys(ops[4].value), ["__proto__"]);
  // A user object shaped like a typed value is sent as a plain map (no type
  // tag); a Text is sent tagged.
  assert.deepEqual(ops[5].value, { $holdfast: "text", value: "hi" });
  assert.equal(ops[5].value[TYPE], undefined);
  assert.deepEqual(ops[6].value, { [TYPE]: "text", value: "hi" });
  assert.equal({}.x, undefined);
  assert.throws(() => recordChange({}, (d) => (d.f = () => 1)), TypeError);
  assert.throws(() => recordChange({}, (d) => (d.m = new Map())), TypeError);
  const cyc = {};
  cyc.self = cyc;
  assert.throws(() => recordChange({}, (d) => (d.c = cyc)), /contains itself/);
});

test("typed values in a draft: text, counters and values of an unknown type", () => {
  const draft = {
    t: { [TYPE]: "text", value: "hi" },
    c: { [TYPE]: "counter", value: 1 },
    u: { [TYPE]: "unknown", typeCode: 9, bytes: new Uint8Array([1]) },
    plain: { $holdfast: "text", value: "hi" },
  };
  const ops = recordChange(draft, (d) => {
    assert.ok(d.t instanceof Text && d.c instanceof Counter);
    assert.ok(d.u instanceof UnknownValue);
    assert.equal(d.u[TYPE], "unknown");
    assert.equal(d.u.typeCode, 9);
    assert.throws(() => (d.u.typeCode = 1), TypeError);
    assert.ok(!(d.plain instanceof Text));
    assert.equal(d.plain.value, "hi");
    d.copy = d.u; // sent tagged: the engine rejects it
    d.plain.value = "ho";
  });
  assert.deepEqual(ops, [
    { op: "put", path: [], key: "copy", value: { [TYPE]: "unknown", typeCode: 9, bytes: new Uint8Array([1]) } },
    { op: "put", path: ["plain"], key: "value", value: "ho" },
  ]);
});

test("urls, find, delete, export/import", async () => {
  const { repo } = await open();
  const h = await repo.create({ a: 1 });
  assert.equal(h.url, `automerge:${h.documentId}`);
  assert.equal(parseUrl(h.url), h.documentId);
  assert.equal(parseUrl(`${h.url}#abc|def`), h.documentId);
  assert.equal(parseUrl(h.documentId), h.documentId);
  // (A URL with heads gives a view at them: repo.test.mjs, real engine.)
  assert.equal(await repo.find(h.documentId), h);
  for (const bad of ["", "automerge:", "automerge:0OIl", "http://x", 42, null]) {
    await assert.rejects(repo.find(bad), (e) => e.name === "InvalidDocumentUrlError" && /automerge:/.test(e.message));
  }
  const bytes = await repo.export(h.url);
  assert.ok(bytes instanceof Uint8Array);
  const h2 = await repo.import(bytes);
  assert.notEqual(h2.documentId, h.documentId);
  assert.deepEqual(h2.doc(), { a: 1 });
  let deleted = false;
  h.on("delete", () => (deleted = true));
  await repo.delete(h.url);
  assert.ok(deleted && h.isDeleted);
  await assert.rejects(h.change((d) => (d.a = 2)), (e) => e.name === "DocumentDeletedError");
});

test("events: change after durable, once/off, storage events", async () => {
  const { repo, fake } = await open();
  const h = await repo.create({ n: 0 });
  const seen = [];
  const onChange = (e) => seen.push([e.source, e.doc.n, e.heads.length]);
  h.on("change", onChange);
  let onceCount = 0;
  h.once("change", () => onceCount++);
  const p = h.change((d) => (d.n = 1));
  assert.equal(seen.length, 0, "no event before the change is durable");
  await p;
  await h.change((d) => (d.n = 2));
  h.off("change", onChange);
  await h.change((d) => (d.n = 3));
  assert.deepEqual(seen, [
    ["local", 1, 1],
    ["local", 2, 1],
  ]);
  assert.equal(onceCount, 1);

  const errs = [];
  const repoErrs = [];
  const repaired = [];
  h.on("storage-error", (e) => errs.push(e));
  repo.on("storage-error", (e) => repoErrs.push(e));
  repo.on("storage-repaired", (e) => repaired.push(e));
  const err = Object.assign(new Error("full"), { name: "QuotaExceededError" });
  fake.handler({ type: "storage-error", documentIds: [h.documentId], error: err });
  fake.handler({ type: "storage-repaired", documentId: h.documentId, quarantined: 2 });
  assert.deepEqual(errs, [err]);
  assert.deepEqual(repoErrs, [{ error: err, documentIds: [h.documentId] }]);
  assert.deepEqual(repaired, [{ documentId: h.documentId, url: h.url, quarantined: 2 }]);
});

test("open options, durability and close", async () => {
  await assert.rejects(Repo.open({ _binding: binding }), TypeError);
  await assert.rejects(Repo.open({ memory: true, indexedDB: "x", _binding: binding }), TypeError);
  const idb = await Repo.open({ indexedDB: "app", _binding: binding });
  assert.equal(idb.durability, "strict");
  assert.deepEqual(FakeWasmRepo.opened.at(-1).opts, { indexedDB: "app", sync: [] });
  const { repo } = await open();
  assert.equal(repo.durability, "memory");
  const h = await repo.create();
  await repo.close();
  await repo.close();
  await assert.rejects(h.change((d) => (d.a = 1)), (e) => e.name === "RepoClosedError");
  await assert.rejects(repo.create({}), (e) => e.name === "RepoClosedError");
  assert.throws(() => h.doc(), (e) => e.name === "RepoClosedError");
});
