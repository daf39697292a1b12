// A stand-in for the generated WasmRepo (pkg/wasm/holdfast.js) so that the
// JS wrapper and its op recording are tested without wasm. Documents are kept
// in the draft form (text and counters as typed values tagged with
// Symbol.for("holdfast.type")); ops are applied by a small JS interpreter of
// the op list described in src/ops/.

import { TYPE } from "../../pkg/draft.js";

function rejected(message) {
  const e = new Error(message);
  e.name = "ChangeRejectedError";
  return e;
}

function isMarker(v, kind) {
  return v !== null && typeof v === "object" && v[TYPE] === kind;
}

/** structuredClone, keeping the typed values' symbol tags (structuredClone drops them). */
function clone(v) {
  if (v === null || typeof v !== "object" || v instanceof Date || v instanceof Uint8Array) return structuredClone(v);
  if (Array.isArray(v)) return v.map(clone);
  const out = v[TYPE] === undefined ? {} : { [TYPE]: v[TYPE] };
  for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: clone(v[k]), enumerable: true, writable: true, configurable: true });
  return out;
}

function resolve(root, path) {
  let obj = root;
  for (const seg of path) {
    if (obj === null || typeof obj !== "object" || isMarker(obj, "text") || isMarker(obj, "counter")) {
      throw rejected(`path ${JSON.stringify(path)} does not lead to an object`);
    }
    if (Array.isArray(obj) ? typeof seg !== "number" || seg >= obj.length : typeof seg !== "string" || !(seg in obj)) {
      throw rejected(`path not found: ${JSON.stringify(path)}`);
    }
    obj = obj[seg];
  }
  return obj;
}

export function applyOps(root, ops) {
  for (const op of ops) {
    const obj = resolve(root, op.path ?? []);
    switch (op.op) {
      case "put":
        if (op.value === undefined) throw rejected("put needs a value");
        if (Array.isArray(obj)) {
          if (op.key >= obj.length) throw rejected("index out of range");
          obj[op.key] = clone(op.value);
        } else {
          Object.defineProperty(obj, op.key, { value: clone(op.value), enumerable: true, writable: true, configurable: true });
        }
        break;
      case "del":
        if (Array.isArray(obj)) {
          const count = op.count ?? 1;
          if (op.key + count > obj.length) throw rejected("index out of range");
          obj.splice(op.key, count);
        } else {
          delete obj[op.key];
        }
        break;
      case "insert":
        if (!Array.isArray(obj)) throw rejected("not a list");
        if (op.index > obj.length) throw rejected("index out of range");
        obj.splice(op.index, 0, ...clone(op.values));
        break;
      case "splice": {
        if (!isMarker(obj, "text")) throw rejected("not a text");
        const s = obj.value;
        if (op.index + (op.del ?? 0) > s.length) throw rejected("index out of range");
        obj.value = s.slice(0, op.index) + (op.text ?? "") + s.slice(op.index + (op.del ?? 0));
        break;
      }
      case "inc":
        if (!isMarker(obj[op.key], "counter")) throw rejected("not a counter");
        obj[op.key].value += op.by;
        break;
      default:
        throw rejected(`unknown op ${op.op}`);
    }
  }
}

function plain(v) {
  if (v === null || typeof v !== "object" || v instanceof Date || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(plain);
  if (isMarker(v, "text") || isMarker(v, "counter")) return v.value;
  const out = {};
  for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: plain(v[k]), enumerable: true, writable: true, configurable: true });
  return out;
}

let nextId = 1;

export class FakeWasmRepo {
  static opened = [];

  static async open(opts) {
    const r = new FakeWasmRepo(opts);
    FakeWasmRepo.opened.push(r);
    return r;
  }

  constructor(opts) {
    this.opts = opts;
    this.durability = opts.memory ? "memory" : "strict";
    this.docs = new Map();
    this.sent = []; // every op list given to change(), in order
    this.handler = null;
    this.closed = false;
  }

  #doc(id) {
    if (this.closed) throw Object.assign(new Error("closed"), { name: "RepoClosedError" });
    const d = this.docs.get(id);
    if (!d) throw Object.assign(new Error(`no document ${id}`), { name: "DocumentUnavailableError" });
    return d;
  }

  setEventHandler(cb) {
    this.handler = cb;
  }

  async create(ops) {
    // A fixed-shape base58 id: "Fake" + counter, padded.
    const id = `2Fake${String(nextId++).padStart(20, "1")}`.replace(/0/g, "z");
    const root = {};
    applyOps(root, ops);
    this.docs.set(id, { root, version: 1, created: ops });
    return id;
  }

  async change(id, ops) {
    const d = this.#doc(id);
    this.sent.push(ops);
    const next = clone(d.root);
    applyOps(next, ops); // synchronously, before the promise, like the real one
    d.root = next;
    d.version += 1;
    const heads = [d.version.toString(16).padStart(64, "0")];
    (d.durable ??= new Map()).set(heads[0], next);
    await Promise.resolve(); // "durable"
    this.handler?.({ type: "change", documentId: id, source: "local", heads, patches: [] });
    return heads;
  }

  async find(id) {
    this.#doc(id);
  }

  doc(id) {
    return plain(this.#doc(id).root);
  }

  /** The document as it was when `heads` became durable. */
  durableDoc(id, heads) {
    const d = this.#doc(id);
    return plain(d.durable?.get(heads[0]) ?? d.root);
  }

  draft(id) {
    return clone(this.#doc(id).root);
  }

  heads(id) {
    return [this.#doc(id).version.toString(16).padStart(64, "0")];
  }

  export(id) {
    return new TextEncoder().encode(JSON.stringify(this.#doc(id).root));
  }

  async import(bytes) {
    const id = await this.create([]);
    this.docs.get(id).root = JSON.parse(new TextDecoder().decode(bytes));
    return id;
  }

  async delete(id) {
    this.#doc(id);
    this.docs.delete(id);
  }

  async close() {
    this.closed = true;
  }
}

export const binding = { WasmRepo: FakeWasmRepo };
