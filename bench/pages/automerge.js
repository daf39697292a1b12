// The automerge-repo 2.5.6 benchmark page: `window.bench` (the contract in
// bench/README.md) over Repo + IndexedDBStorageAdapter + WebSocketClientAdapter.
// Automerge's wasm is the file automerge.wasm next to this bundle (the /slim
// entries do not embed it); "durable" means `await repo.flush([documentId])`.
import { Repo, initializeWasm } from "@automerge/automerge-repo/slim";
import * as Automerge from "@automerge/automerge/slim";
import { IndexedDBStorageAdapter } from "@automerge/automerge-repo-storage-indexeddb";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import { BroadcastChannelNetworkAdapter } from "@automerge/automerge-repo-network-broadcastchannel";
import { idbStats } from "./common.js";

await initializeWasm(new URL("automerge.wasm", import.meta.url));

let repo = null;
let dbName = null;
let socket = null; // the WebSocketClientAdapter, when syncing

const now = () => performance.now();
const durable = (handles) => repo.flush(handles.map((h) => h.documentId));
// Resolves when the network subsystem next announces a peer (the sync server
// answered our join).
const nextPeer = () => new Promise((resolve) => repo.networkSubsystem.once("peer", resolve));

// A new document, already durable.
async function createDurable(initial) {
  const h = repo.create(initial);
  await durable([h]);
  return h;
}

const abs = () => performance.timeOrigin + performance.now();

const bench = {
  ready: false,

  // W10: two tabs of one profile on one database, each a Repo with the
  // IndexedDB storage and the BroadcastChannel network adapters (how
  // automerge-repo shares between tabs).
  async w10open({ db }) {
    dbName = db;
    repo = new Repo({ storage: new IndexedDBStorageAdapter(db), network: [new BroadcastChannelNetworkAdapter()] });
    await repo.storageId();
    return {};
  },
  async w10create() {
    return (await createDurable({ n: 0 })).url;
  },
  async w10listen(url) {
    const h = await repo.find(url);
    window.w10handle = h;
    window.w10 = [];
    h.on("change", ({ doc }) => window.w10.push({ t: abs(), n: doc.n }));
  },
  async w10change(url, i) {
    const h = window.w10handle ?? (window.w10handle = await repo.find(url));
    const start = abs();
    h.change((d) => {
      d.n = i;
    });
    await durable([h]);
    return { start, durable: abs() };
  },
  w10seen(i) {
    return window.w10.find((x) => x.n >= i)?.t ?? null;
  },

  async open({ db, sync }) {
    dbName = db;
    socket = sync ? new WebSocketClientAdapter(sync) : null;
    repo = new Repo({ storage: new IndexedDBStorageAdapter(db), network: socket ? [socket] : [] });
    const peer = socket ? nextPeer() : null;
    await repo.storageId(); // the database is open (and the repo's storage id saved)
    if (peer) await peer;
    return {};
  },

  async w1(n) {
    const h = await createDurable();
    const latencies = [];
    const t0 = now();
    for (let i = 0; i < n; i++) {
      const s = now();
      h.change((d) => {
        d.n = i;
      });
      await durable([h]);
      latencies.push(now() - s);
    }
    return { ms: now() - t0, latencies };
  },

  async w2(n) {
    const h = await createDurable();
    const t0 = now();
    for (let i = 0; i < n; i++) {
      h.change((d) => {
        d.n = i;
      });
    }
    await durable([h]);
    return { ms: now() - t0 };
  },

  async w3Prepare(n) {
    const h = repo.create({ items: [] });
    for (let i = 0; i < n; i++) {
      h.change((d) => {
        d.items.push(i);
      });
    }
    await durable([h]);
    return { url: h.url };
  },

  async w3Load(url) {
    const t0 = now();
    const h = await repo.find(url);
    const findMs = now() - t0;
    const length = h.doc().items.length;
    return { ms: now() - t0, findMs, length };
  },

  async idbStats() {
    return idbStats(dbName);
  },

  async w4Prepare(n) {
    const hs = [];
    for (let i = 0; i < n; i++) hs.push(repo.create({ title: `doc ${i}`, n: i }));
    await durable(hs);
    return { urls: hs.map((h) => h.url) };
  },

  async w4Load(urls) {
    const t0 = now();
    const hs = await Promise.all(urls.map((u) => repo.find(u)));
    let sum = 0;
    for (const h of hs) sum += h.doc().n;
    return { ms: now() - t0, sum };
  },

  // The same documents as W4's, made while online.
  w5Prepare(n) {
    return bench.w4Prepare(n);
  },

  // What the runner asks the server to have (hex heads, Automerge.getHeads).
  async w5Heads(urls) {
    const heads = {};
    for (const h of await Promise.all(urls.map((u) => repo.find(u)))) heads[h.url] = Automerge.getHeads(h.doc());
    return { heads };
  },

  // The adapter's own disconnect()/connect(): connect() re-joins with the same
  // peer id; the repo then re-adds the server as a peer and re-syncs every
  // document it holds with it. Passing the adapter's peerMetadata keeps our
  // storage id (the repo's networkSubsystem.reconnect() would drop it).
  async disconnect() {
    socket.disconnect();
    return {};
  },

  async reconnect() {
    const peer = nextPeer();
    socket.connect(repo.peerId, socket.peerMetadata);
    await peer;
    return {};
  },

  async w5Change(urls) {
    const hs = await Promise.all(urls.map((u) => repo.find(u)));
    for (const h of hs) {
      h.change((d) => {
        d.n = d.n + 1;
      });
    }
    await durable(hs);
    const heads = {};
    for (const h of hs) heads[h.url] = Automerge.getHeads(h.doc());
    return { heads };
  },

  // W5b: nothing to warm (the wasm was initialized when this module loaded).
  async warm() {
    return {};
  },

  // Close the repo: shutdown() disconnects and flushes every document.
  async close() {
    await repo.shutdown();
    repo = null;
    socket = null;
    return {};
  },

  // W5b, the other device: find each (from the server), change it, flush it.
  // The runner then waits until the server has the heads. -> { heads }
  async w5bChange(urls) {
    const hs = await Promise.all(urls.map((u) => repo.find(u)));
    for (const h of hs) {
      h.change((d) => {
        d.n = d.n + 1000;
      });
    }
    await durable(hs);
    const heads = {};
    for (const h of hs) heads[h.url] = Automerge.getHeads(h.doc());
    return { heads };
  },

  // W5b, this device after the reload: from opening the repo until every
  // url of `heads` holds the other device's change, flushed. automerge-repo
  // syncs only documents that are found, so the app finds all it holds
  // (`urls`, which an app would keep in a document of its own) to learn
  // what changed. -> { ms, openMs, findMs }
  async w5bResume({ db, sync, urls, heads }) {
    const t0 = now();
    dbName = db;
    socket = new WebSocketClientAdapter(sync);
    repo = new Repo({ storage: new IndexedDBStorageAdapter(db), network: [socket] });
    const openMs = now() - t0;
    const hs = await Promise.all(urls.map((u) => repo.find(u)));
    const findMs = now() - t0;
    const byUrl = new Map(hs.map((h) => [h.url, h]));
    await Promise.all(
      Object.entries(heads).map(([u, want]) => {
        const h = byUrl.get(u);
        const has = () => Automerge.getMissingDeps(h.doc(), want).length === 0;
        if (has()) return undefined;
        return new Promise((resolve) => {
          const check = () => {
            if (has()) {
              h.off("change", check);
              resolve();
            }
          };
          h.on("change", check);
        });
      }),
    );
    await durable(Object.keys(heads).map((u) => byUrl.get(u)));
    return { ms: now() - t0, openMs, findMs };
  },

  // D1: change() returning is what an app sees as done; nothing is flushed.
  // The runner SIGKILLs the browser inside benchReported().
  async d1Start(n) {
    const h = await createDurable();
    await window.benchStarted(h.url);
    for (let i = 0; i < n; i++) {
      h.change((d) => {
        d["k" + i] = i;
      });
    }
    await window.benchReported(n);
    return { url: h.url };
  },

  async d1Count(url) {
    try {
      const h = await repo.find(url, { signal: AbortSignal.timeout(5000) });
      const count = Object.keys(h.doc()).filter((k) => k.startsWith("k")).length;
      return { count };
    } catch {
      return { count: 0 };
    }
  },
};

window.bench = bench;
bench.ready = true;
