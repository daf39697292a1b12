// Property test: any JSON-like value a user stores comes back unchanged,
// against the real wasm engine (memory storage, in node). Values include
// keys such as "$holdfast", "__proto__", "value", "constructor" and "", and
// objects shaped exactly like the typed-value markers of older versions
// ({"$holdfast": "text", value: "hi"}), which once came back as a text.
//
//   node --test tests/js/roundtrip.test.mjs
//   ROUNDTRIP_SEED=1234 ROUNDTRIP_CASES=2000 node --test tests/js/roundtrip.test.mjs
//
// A failure names the seed and the case; the same seed replays the same
// cases. Not generated: -0 (stored as the integer 0), NaN and infinities (not
// JSON), lone UTF-16 surrogates (not valid Unicode; Rust strings cannot hold
// them). Needs `scripts/build-pkg.sh --dev` first (make test does it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";

const wasm = new URL("../../pkg/wasm/holdfast_bg.wasm", import.meta.url);
if (!existsSync(wasm)) {
  throw new Error("pkg/wasm is not built: run scripts/build-pkg.sh --dev (make test does)");
}
const { Repo, Text, Counter } = await import("../../pkg/index.js");

const SEED = process.env.ROUNDTRIP_SEED !== undefined ? Number(process.env.ROUNDTRIP_SEED) >>> 0 : (Date.now() ^ (Math.random() * 2 ** 32)) >>> 0;
const CASES = Number(process.env.ROUNDTRIP_CASES ?? 200);

/** mulberry32: a small seeded PRNG, [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Keys that have meant something to holdfast, to JS objects or to JSON.
const KEYS = [
  "$holdfast", "__proto__", "value", "constructor", "", "typeCode", "bytes", "toString",
  "valueOf", "hasOwnProperty", "prototype", "toJSON", "length", "then", "0", "1", "10",
  "a", "b", "key", "é", "😀", " ", "$", "op", "path",
];
const MARKER_KINDS = ["text", "counter", "date", "unknown", "bogus", ""];
// Strings without lone surrogates (Rust strings cannot hold them).
const STRINGS = ["", "hi", "text", "counter", "date", "unknown", "$holdfast", "__proto__", "héllo 😀", "a\nb", "0", "null"];
const NUMBERS = [0, 1, -1, 5, 42, 1.5, -2.25, 1234.5, 2 ** 31, -(2 ** 40), Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 60, 1e300, 5e-324, 0.1];

/** A plain object whose keys are all own, enumerable properties (also "__proto__"). */
function object(entries) {
  const o = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

function generator(rnd) {
  const int = (n) => Math.floor(rnd() * n);
  const pick = (xs) => xs[int(xs.length)];
  const key = () => (rnd() < 0.7 ? pick(KEYS) : randomString());
  function randomString() {
    const chars = "abz$_ é😀\u0000\"\\";
    let s = "";
    for (let i = int(6); i > 0; i--) s += [...chars][int([...chars].length)];
    return s;
  }
  function scalar() {
    switch (int(5)) {
      case 0:
        return null;
      case 1:
        return rnd() < 0.5;
      case 2:
        return rnd() < 0.7 ? pick(NUMBERS) : int(2000) - 1000;
      case 3:
        return rnd() < 0.6 ? pick(STRINGS) : randomString();
      default:
        return rnd() * 1e6 - 5e5;
    }
  }
  // An object shaped like an old typed-value marker, sometimes with extras.
  function markerLike(depth) {
    const entries = [["$holdfast", pick(MARKER_KINDS)]];
    const shape = int(4);
    if (shape === 0) entries.push(["value", pick(["hi", "", 5, 0, 1234.5, null, true])]);
    else if (shape === 1) entries.push(["value", value(depth + 1)]);
    else if (shape === 2) entries.push(["typeCode", int(20)], ["bytes", [1, 2, 3]]);
    if (rnd() < 0.3) entries.push([pick(KEYS), value(depth + 1)]);
    return object(entries);
  }
  function value(depth = 0) {
    const r = rnd();
    if (depth >= 3 || r < 0.35) return scalar();
    if (r < 0.5) return markerLike(depth);
    if (r < 0.7) return Array.from({ length: int(4) }, () => value(depth + 1));
    return map(depth);
  }
  function map(depth = 0) {
    const entries = new Map();
    for (let i = int(5); i > 0; i--) entries.set(key(), value(depth + 1));
    return object(entries);
  }
  return { value, map, markerLike };
}

/** A readable rendering of a value (own "__proto__" keys included). */
function show(v) {
  return JSON.stringify(v, (_, x) => (typeof x === "bigint" ? `${x}n` : x));
}

// Where a case's value is assigned (in turn: one per case), and where to read
// it back. `d` is the root of a document shared by a batch of cases, `i` the
// case's number; its maps and lists exist before the assignment.
const SKELETON = () => ({ m: {}, l: [{}, 0] });
const PLACEMENTS = [
  ["d.x = value (at the root)", (d, i, v) => (d[`x${i}`] = v), (d, i) => d[`x${i}`]],
  ["into an existing map", (d, i, v) => (d[`n${i}`].m.y = v), (d, i) => d[`n${i}`].m.y],
  ["into a map inside a list", (d, i, v) => (d[`n${i}`].l[0].y = v), (d, i) => d[`n${i}`].l[0].y],
  ["list insert", (d, i, v) => d[`n${i}`].l.insertAt(1, v), (d, i) => d[`n${i}`].l[1]],
  ["list put", (d, i, v) => (d[`n${i}`].l[1] = v), (d, i) => d[`n${i}`].l[1]],
];
// Cases share documents in small batches. The engine's debug build (what the
// node tests run) is slow per operation, more so in large documents: the
// cost of this test is the number of values written, ~4 per case.
const BATCH = 10;

test(`plain values round-trip unchanged through create, change and doc (seed ${SEED}, ${CASES} cases)`, async () => {
  const rnd = prng(SEED);
  const gen = generator(rnd);
  const cases = Array.from({ length: CASES }, (_, i) => ({
    initial: rnd() < 0.3 ? object([["m", gen.markerLike(1)]]) : gen.map(),
    v: gen.value(),
    placement: PLACEMENTS[i % PLACEMENTS.length],
  }));
  const describe = (step, i) => `${step}, case ${i}: initial ${show(cases[i].initial)}, value ${show(cases[i].v)}`;
  // Checks run in concurrent tasks: each says where it is in its own `where`
  // (a rejected promise can carry its own, as `e.where`).
  const task = async (name, fn) => {
    const where = { at: name };
    try {
      await fn((step, i) => (where.at = describe(step, i)));
    } catch (e) {
      e.message = `${e.message}\n\nround-trip failed at ${e.where ?? where.at}\nreplay: ROUNDTRIP_SEED=${SEED} node --test tests/js/roundtrip.test.mjs`;
      throw e;
    }
  };
  const repo = await Repo.open({ memory: true });
  try {
    // 1. repo.create(initial), one document per case.
    await task("repo.create", async (at) => {
      const handles = await Promise.all(
        cases.map((c, i) =>
          repo.create(c.initial).catch((e) => {
            throw Object.assign(e, { where: describe("repo.create(initial)", i) });
          }),
        ),
      );
      handles.forEach((h, i) => {
        at("repo.create(initial)", i);
        assert.deepStrictEqual(h.doc(), cases[i].initial);
      });
    });

    const batches = [];
    for (let first = 0; first < CASES; first += BATCH) batches.push(cases.map((c, i) => [c, i]).slice(first, first + BATCH));
    const batchTask = (batch) =>
      task(`cases ${batch[0][1]}..${batch.at(-1)[1]}`, async (at) => {
        const h = await repo.create(Object.fromEntries(batch.map(([, i]) => [`n${i}`, SKELETON()])));
        // 2. The value assigned at the root or inside a map or list already
        // in the document, then copied as the draft holds it (what was sent,
        // hydrated in JS: what the handle keeps for its next change).
        await h.change((d) => {
          for (const [{ v, placement }, i] of batch) {
            placement[1](d, i, v);
            d[`c${i}`] = placement[2](d, i);
          }
        });
        const doc = h.doc();
        for (const [{ v, placement }, i] of batch) {
          at(placement[0], i);
          assert.deepStrictEqual(placement[2](doc, i), v);
          at(`${placement[0]}, then a copy from the handle's draft`, i);
          assert.deepStrictEqual(doc[`c${i}`], v);
        }

        // 3. A copy as a draft read out of wasm holds the value: the
        // document exported and imported, so the new handle's first change
        // reads its draft from the engine.
        const fresh = await repo.import(await repo.export(h.url));
        await fresh.change((d) => {
          for (const [{ placement }, i] of batch) d[`w${i}`] = placement[2](d, i);
        });
        const got = fresh.doc();
        for (const [{ v, placement }, i] of batch) {
          at(`${placement[0]}, then a copy from a draft read out of wasm`, i);
          assert.deepStrictEqual(got[`w${i}`], v);
          assert.deepStrictEqual(placement[2](got, i), v);
        }
      });
    await Promise.all(batches.map(batchTask));
  } finally {
    await repo.close();
  }
});

test("the issue's examples, and marker-shaped objects beside real Text and Counter values", async () => {
  const repo = await Repo.open({ memory: true });
  // Issue 10, point 6: meta came back as the text "hi", other as the number 5.
  const h = await repo.create({ meta: { $holdfast: "text", value: "hi" }, body: new Text("real"), n: new Counter(1) });
  assert.deepStrictEqual(h.doc(), { meta: { $holdfast: "text", value: "hi" }, body: "real", n: 1 });
  await h.change((d) => {
    d.other = { $holdfast: "counter", value: 5 };
  });
  assert.deepStrictEqual(h.doc().other, { $holdfast: "counter", value: 5 });

  const more = {
    d: { $holdfast: "date", value: 1000 },
    u: { $holdfast: "unknown", typeCode: 9, bytes: [1] },
    p: JSON.parse('{"__proto__": {"$holdfast": "text", "value": "x"}}'),
  };
  await h.change((d) => {
    Object.assign(d, more);
    // Only string keys are stored: not even the typed-value tag itself.
    d.sym = { [Symbol.for("holdfast.type")]: "text", value: "x" };
    d.list = [{ $holdfast: "text", value: "in a list" }, new Text("t"), new Counter(2)];
    d.body.insertAt(4, "!");
    d.n.increment(2);
    // What the draft reads back is what was assigned.
    assert.deepStrictEqual({ ...d.other }, { $holdfast: "counter", value: 5 });
    assert.ok(d.list[1] instanceof Text && d.list[2] instanceof Counter);
    assert.ok(!(d.meta instanceof Text) && !(d.list[0] instanceof Text));
  });
  const fresh = await repo.import(await repo.export(h.url));
  await fresh.change((d) => {
    assert.ok(d.body instanceof Text && d.n instanceof Counter && d.list[1] instanceof Text);
    assert.ok(!(d.meta instanceof Text) && !(d.other instanceof Counter) && !(d.list[0] instanceof Text));
    assert.equal(d.meta.value, "hi");
    d.list[2].increment();
    d.body.insertAt(0, ">");
  });
  assert.deepStrictEqual(fresh.doc(), {
    meta: { $holdfast: "text", value: "hi" },
    body: ">real!",
    n: 3,
    other: { $holdfast: "counter", value: 5 },
    ...more,
    sym: { value: "x" },
    list: [{ $holdfast: "text", value: "in a list" }, "t", 3],
  });
  assert.equal(Object.getPrototypeOf(fresh.doc().p), Object.prototype);
  assert.deepStrictEqual(Object.keys(fresh.doc().p), ["__proto__"]);
  await repo.close();
});
