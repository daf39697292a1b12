// Bundled by migrate.test.mjs (esbuild) for the browser: automerge-repo
// 2.5.6 with its IndexedDB storage adapter writes documents, as an app on
// automerge-repo would have, for holdfast to open. Automerge's wasm is
// automerge.wasm next to the bundle.
import { Repo, initializeWasm } from "@automerge/automerge-repo/slim";
import { IndexedDBStorageAdapter } from "@automerge/automerge-repo-storage-indexeddb";

await initializeWasm(new URL("automerge.wasm", import.meta.url));

window.am = {
  /** `docs` documents, each made by `changes` changes, saved and flushed
   * into IndexedDB database `db`; resolves with { url: plain document }. */
  async write(db, docs, changes) {
    const repo = new Repo({ storage: new IndexedDBStorageAdapter(db), network: [] });
    const out = {};
    for (let i = 0; i < docs; i++) {
      // A large first state, then small changes, each flushed: automerge-repo
      // keeps those as incrementals beside the snapshot (it compacts only
      // once the incrementals outweigh it).
      const h = repo.create({ title: `doc ${i}`, items: Array.from({ length: 300 }, (_, k) => `seed ${k}`), count: 0 });
      await repo.flush([h.documentId]);
      for (let c = 0; c < changes; c++) {
        h.change((d) => {
          d.items.push(`item ${c}`);
          d.count = c + 1;
        });
        await repo.flush([h.documentId]);
      }
      out[h.url] = JSON.parse(JSON.stringify(h.doc()));
    }
    await repo.shutdown();
    return out;
  },

  /** Every key of IndexedDB database `db`'s `documents` store. */
  async keys(db) {
    const idb = await new Promise((resolve, reject) => {
      const r = indexedDB.open(db);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const keys = await new Promise((resolve, reject) => {
      const r = idb.transaction("documents").objectStore("documents").getAllKeys();
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    idb.close();
    return keys;
  },

  /** automerge-repo on `db` again: the documents it finds there. */
  async read(db, urls) {
    const repo = new Repo({ storage: new IndexedDBStorageAdapter(db), network: [] });
    const out = {};
    for (const url of urls) out[url] = JSON.parse(JSON.stringify((await repo.find(url)).doc()));
    await repo.shutdown();
    return out;
  },
};
window.amReady = true;
