// What both benchmark pages share: the size of an IndexedDB database (records
// and value bytes over all its object stores).

// The bytes a stored value holds: every ArrayBuffer / typed array found in it,
// recursively through arrays and plain objects (e.g. automerge-repo's
// `{ key, binary }` records).
function valueBytes(v) {
  if (v == null || typeof v !== "object") return 0;
  if (v instanceof ArrayBuffer) return v.byteLength;
  if (ArrayBuffer.isView(v)) return v.byteLength;
  let sum = 0;
  for (const x of Array.isArray(v) ? v : Object.values(v)) sum += valueBytes(x);
  return sum;
}

// `{ records, bytes }` over every object store of the IndexedDB database
// `dbName` ({0, 0} if it does not exist; it is not created).
export function idbStats(dbName) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(dbName);
    let missing = false;
    req.onupgradeneeded = () => {
      // The database did not exist: abort, so that it is not created empty.
      missing = true;
      req.transaction.abort();
    };
    req.onerror = () => (missing ? resolve({ records: 0, bytes: 0 }) : reject(req.error));
    req.onsuccess = () => {
      const db = req.result;
      const names = [...db.objectStoreNames];
      if (names.length === 0) {
        db.close();
        resolve({ records: 0, bytes: 0 });
        return;
      }
      let records = 0;
      let bytes = 0;
      const tx = db.transaction(names, "readonly");
      for (const name of names) {
        const cursorReq = tx.objectStore(name).openCursor();
        cursorReq.onsuccess = () => {
          const cursor = cursorReq.result;
          if (!cursor) return;
          records++;
          bytes += valueBytes(cursor.value);
          cursor.continue();
        };
      }
      tx.oncomplete = () => {
        db.close();
        resolve({ records, bytes });
      };
      tx.onabort = tx.onerror = () => {
        db.close();
        reject(tx.error);
      };
    };
  });
}
