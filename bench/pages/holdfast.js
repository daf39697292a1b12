// The holdfast benchmark page: `window.bench` over the holdfast npm package
// (pkg/, bundled by build.mjs), as bench/README.md's page contract says.
// "Durable" is holdfast's own report: a change's promise resolves only once
// its IndexedDB transaction (strict durability) has committed.
import { Repo } from "../../pkg/index.js";
import { idbStats } from "./common.js";

let repo = null;
let dbName = null;
const handles = new Map(); // url -> DocHandle

async function find(url) {
  let h = handles.get(url);
  if (!h) {
    h = await repo.find(url);
    handles.set(url, h);
  }
  return h;
}

async function create(initial) {
  const h = await repo.create(initial);
  handles.set(h.url, h);
  return h;
}

const abs = () => performance.timeOrigin + performance.now();

const bench = {
  ready: false,
  system: "holdfast",

  // W10 (two tabs of one profile on one database, no server): the writer
  // changes, the reader records when each `change` event arrives.
  async w10create() {
    return (await create({ n: 0 })).url;
  },
  async w10listen(url) {
    const h = await find(url);
    window.w10 = [];
    h.on("change", (e) => window.w10.push({ t: abs(), n: e.doc.n }));
  },
  async w10change(url, i) {
    const h = await find(url);
    const start = abs();
    await h.change((d) => {
      d.n = i;
    });
    return { start, durable: abs() };
  },
  w10seen(i) {
    return window.w10.find((x) => x.n >= i)?.t ?? null;
  },

  async open({ db, sync = null }) {
    if (repo) throw new Error("a repo is already open in this page");
    dbName = db;
    repo = await Repo.open({ indexedDB: db, sync: sync ? [sync] : [] });
    return { durability: repo.durability };
  },

  async w1(n) {
    const h = await create({ n: 0 });
    const latencies = [];
    const t0 = performance.now();
    for (let i = 1; i <= n; i++) {
      const t = performance.now();
      await h.change((d) => {
        d.n = i;
      });
      latencies.push(performance.now() - t);
    }
    return { ms: performance.now() - t0, latencies };
  },

  async w2(n) {
    const h = await create({ n: 0 });
    const t0 = performance.now();
    const all = [];
    for (let i = 1; i <= n; i++) {
      all.push(
        h.change((d) => {
          d.n = i;
        }),
      );
    }
    await Promise.all(all);
    return { ms: performance.now() - t0 };
  },

  async w3Prepare(n) {
    const h = await create({ items: [] });
    const all = [];
    for (let i = 0; i < n; i++) {
      all.push(
        h.change((d) => {
          d.items.push(i);
        }),
      );
    }
    await Promise.all(all);
    return { url: h.url };
  },

  async w3Load(url) {
    const t0 = performance.now();
    const h = await find(url);
    const findMs = performance.now() - t0;
    const doc = h.doc();
    const ms = performance.now() - t0;
    return { ms, findMs, length: doc.items.length };
  },

  idbStats() {
    return idbStats(dbName);
  },

  async w4Prepare(n) {
    const hs = await Promise.all(Array.from({ length: n }, (_, i) => create({ title: `doc ${i}`, n: i })));
    return { urls: hs.map((h) => h.url) };
  },

  async w4Load(urls) {
    const t0 = performance.now();
    const hs = await Promise.all(urls.map((u) => find(u)));
    let sum = 0;
    for (const h of hs) sum += h.doc().n;
    return { ms: performance.now() - t0, sum };
  },

  // The same documents as W4's, made while online.
  w5Prepare(n) {
    return bench.w4Prepare(n);
  },

  async w5WaitServer(urls) {
    const t0 = performance.now();
    await Promise.all(urls.map((u) => handles.get(u).whenSynced()));
    return { ms: performance.now() - t0 };
  },

  disconnect() {
    repo.goOffline();
  },

  reconnect() {
    repo.goOnline();
  },

  async w5Change(urls) {
    const heads = {};
    await Promise.all(
      urls.map(async (u) => {
        heads[u] = await handles.get(u).change((d) => {
          d.n = d.n + 1;
        });
      }),
    );
    return { heads };
  },

  // W5b. Load and initialize the wasm module now, outside the timed window
  // (automerge-repo's page does it when its module loads).
  async warm() {
    const r = await Repo.open({ memory: true });
    await r.close();
    return {};
  },

  // Close the repo: close() also writes what it keeps in memory for a while
  // (the server cursor, the heads the server acknowledged), as an app does
  // before a reload.
  async close() {
    await repo.close();
    repo = null;
    handles.clear();
    return {};
  },

  // W5b, the other device: find each (from the server: this repo's storage
  // does not have them), change it, and wait until the server has the
  // change on its disk. -> { heads } per url, the durable heads after it.
  async w5bChange(urls) {
    const heads = {};
    await Promise.all(
      urls.map(async (u) => {
        const h = await find(u);
        heads[u] = await h.change((d) => {
          d.n = d.n + 1000;
        });
        await h.whenSynced();
      }),
    );
    return { heads };
  },

  // W5b, this device after the reload: from Repo.open until the repo-level
  // `change` events (durable by definition) showed every url of `heads` at
  // heads including the other device's. Opens nothing itself: the app has
  // not asked for any document. -> { ms, openMs, events }
  async w5bResume({ db, sync, heads }) {
    if (repo) throw new Error("a repo is already open in this page");
    const t0 = performance.now();
    const waiting = new Map(Object.entries(heads));
    let events = 0;
    let done;
    const all = new Promise((resolve) => (done = resolve));
    const seen = (e) => {
      events++;
      const want = waiting.get(e.url);
      if (want && want.every((x) => e.heads.includes(x))) {
        waiting.delete(e.url);
        if (waiting.size === 0) done();
      }
    };
    dbName = db;
    repo = await Repo.open({ indexedDB: db, sync: [sync] });
    const openMs = performance.now() - t0;
    repo.on("change", seen);
    if (waiting.size === 0) done();
    await all;
    const ms = performance.now() - t0;
    repo.off("change", seen);
    return { ms, openMs, events };
  },

  async d1Start(n) {
    const h = await create({});
    await window.benchStarted(h.url);
    let reported = 0;
    await new Promise((resolve) => {
      for (let i = 0; i < n; i++) {
        h.change((d) => {
          d[`k${i}`] = i;
        }).then(() => {
          reported += 1;
          if (reported === n) resolve();
        });
      }
    });
    await window.benchReported(reported);
    return { url: h.url };
  },

  async d1Count(url) {
    try {
      const h = await find(url);
      return { count: Object.keys(h.doc()).filter((k) => k.startsWith("k")).length };
    } catch (e) {
      return { count: 0, error: `${e.name}: ${e.message}` };
    }
  },
};

window.bench = bench;
bench.ready = true;
