// Recording a change: a Proxy over a draft of the document that turns what
// the callback does into holdfast's op list (see src/ops/):
//
//   {op:"put",    path, key, value}           map key / existing list index
//   {op:"del",    path, key, count?}          map key / `count` list elements
//   {op:"insert", path, index, values}        list insertion
//   {op:"splice", path, index, del, text}     text (UTF-16 positions)
//   {op:"inc",    path, key, by}              counter
//
// `path` is the array of map keys and list indices from the root. Values are
// sent as plain JS (objects, arrays, strings, numbers, booleans, null,
// Uint8Array, Date); every plain object is a map, whatever its keys. Typed
// values (Text, Counter) travel out of band, tagged with a symbol that no
// stored data can carry (encode() copies string keys only):
//
//   {[TYPE]: "text", value: "…"}      {[TYPE]: "counter", value: n}
//
// where TYPE = Symbol.for("holdfast.type"). Drafts come from WasmRepo.draft(),
// which tags text and counters the same way, and a value of a type the engine
// cannot read as {[TYPE]: "unknown", typeCode, bytes}; hydrate() turns them
// into Text / Counter / UnknownValue instances.

/** The key that tags a typed value (see above and src/ops/). */
export const TYPE = Symbol.for("holdfast.type");

const HOOK = Symbol("holdfast.hook");
const RAW = Symbol("holdfast.raw");

function rangeError(msg) {
  return new RangeError(msg);
}

function checkInt(n, what) {
  if (!Number.isSafeInteger(n)) throw new TypeError(`${what} must be an integer, got ${n}`);
  return n;
}

/** A collaborative text value. Assign `new Text("…")` to create one; inside
 * `change` a text field reads as a Text whose edits are recorded. */
export class Text {
  #value;
  constructor(value = "") {
    if (typeof value !== "string") throw new TypeError("new Text() takes a string");
    this.#value = value;
  }
  get value() {
    return this.#value;
  }
  get length() {
    return this.#value.length;
  }
  toString() {
    return this.#value;
  }
  toJSON() {
    return this.#value;
  }
  valueOf() {
    return this.#value;
  }
  [Symbol.toPrimitive]() {
    return this.#value;
  }
  /** Delete `del` UTF-16 units at `index`, then insert `text` there. */
  splice(index, del = 0, text = "") {
    checkInt(index, "index");
    checkInt(del, "delete count");
    if (typeof text !== "string") throw new TypeError("text must be a string");
    if (index < 0 || index > this.#value.length) {
      throw rangeError(`text index ${index} out of range (length ${this.#value.length})`);
    }
    if (del < 0 || index + del > this.#value.length) {
      throw rangeError(`cannot delete ${del} characters at ${index} (length ${this.#value.length})`);
    }
    this[HOOK]?.record(this, (path) => ({ op: "splice", path, index, del, text }));
    this.#value = this.#value.slice(0, index) + text + this.#value.slice(index + del);
  }
  insertAt(index, ...text) {
    this.splice(index, 0, text.join(""));
  }
  deleteAt(index, count = 1) {
    this.splice(index, count, "");
  }
  /**
   * Rich text: mark UTF-16 units `start..end` with `name` = `value` (a
   * string, number, boolean, null, Uint8Array or Date), as automerge's
   * `mark`. `expand`: whether text typed at an edge takes the mark:
   * "after" (default), "before", "both" or "none". Inside `change`, on text
   * that is in the document already. Read marks with `handle.marks(path)`.
   */
  mark(start, end, name, value, expand = "after") {
    if (value === undefined) throw new TypeError("mark needs a value (undefined cannot be stored)");
    this.#markOp("mark", start, end, name, value, expand);
  }
  /** Remove mark `name` from `start..end` (automerge's `unmark`). */
  unmark(start, end, name, expand = "after") {
    this.#markOp("unmark", start, end, name, undefined, expand);
  }
  #markOp(op, start, end, name, value, expand) {
    checkInt(start, "start");
    checkInt(end, "end");
    if (start < 0 || end < start || end > this.#value.length) {
      throw rangeError(`${op} range ${start}..${end} out of range (length ${this.#value.length})`);
    }
    if (typeof name !== "string" || name === "") throw new TypeError(`${op} needs a name`);
    if (!this[HOOK]) throw new TypeError(`${op}: only text already in the document can be marked, inside change`);
    this[HOOK].record(this, (path) => ({ op, path, start, end, name, expand, ...(op === "mark" && { value }) }));
  }
}

/** A counter: concurrent increments add up. Assign `new Counter(n)`. */
export class Counter {
  #value;
  constructor(value = 0) {
    this.#value = checkInt(value, "a counter's value");
  }
  get value() {
    return this.#value;
  }
  valueOf() {
    return this.#value;
  }
  toString() {
    return String(this.#value);
  }
  toJSON() {
    return this.#value;
  }
  increment(by = 1) {
    checkInt(by, "increment");
    this[HOOK]?.recordInc(this, by);
    this.#value += by;
    return this.#value;
  }
  decrement(by = 1) {
    return this.increment(-checkInt(by, "decrement"));
  }
}

/** A value of a type this engine cannot read (a newer automerge's), as read
 * from a document. It can be kept and read but not written. */
export class UnknownValue {
  constructor(typeCode, bytes) {
    this.typeCode = typeCode;
    this.bytes = bytes;
    Object.freeze(this);
  }
  get [TYPE]() {
    return "unknown";
  }
}

function isPlainObject(v) {
  if (v === null || typeof v !== "object") return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function typed(kind, value) {
  return { [TYPE]: kind, value };
}

function setOwn(obj, k, v) {
  if (k === "__proto__") Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
  else obj[k] = v;
}

/** A value as sent in an op: plain data, typed values for text and counters. */
export function encode(value, seen = new Set()) {
  if (value !== null && typeof value === "object" && value[RAW]) value = value[RAW];
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return value;
  if (value === undefined) throw new TypeError("cannot store undefined (use null, or delete the key)");
  if (typeof value !== "object") throw new TypeError(`cannot store a ${typeof value}`);
  if (value instanceof Text) return typed("text", value.value);
  if (value instanceof Counter) return typed("counter", value.value);
  if (value instanceof UnknownValue) return { [TYPE]: "unknown", typeCode: value.typeCode, bytes: value.bytes };
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new TypeError("cannot store an invalid Date");
    return new Date(value.getTime());
  }
  if (value instanceof Uint8Array) return value.slice();
  if (seen.has(value)) throw new TypeError("cannot store a value that contains itself");
  seen.add(value);
  let out;
  if (Array.isArray(value)) {
    out = [];
    for (let i = 0; i < value.length; i++) out.push(encode(value[i], seen));
  } else if (isPlainObject(value)) {
    // A map: its own string keys only (never a symbol, so never a typed value).
    out = {};
    for (const k of Object.keys(value)) setOwn(out, k, encode(value[k], seen));
  } else {
    throw new TypeError(`cannot store an instance of ${value.constructor?.name ?? "a class"}; use plain objects`);
  }
  seen.delete(value);
  return out;
}

/** The draft form of an encoded value (or of WasmRepo.draft()'s tree): typed
 * values become Text / Counter / UnknownValue, everything else is copied. */
export function hydrate(value) {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Date) return new Date(value.getTime());
  if (value instanceof Uint8Array) return value.slice();
  if (Array.isArray(value)) return value.map(hydrate);
  const kind = value[TYPE];
  if (kind !== undefined) {
    switch (kind) {
      case "text":
        return new Text(value.value);
      case "counter":
        return new Counter(value.value);
      default:
        return new UnknownValue(value.typeCode, value.bytes);
    }
  }
  const out = {};
  for (const k of Object.keys(value)) setOwn(out, k, hydrate(value[k]));
  return out;
}

function isContainer(v) {
  return Array.isArray(v) || isPlainObject(v);
}

function isIndex(prop) {
  return typeof prop === "string" && /^(0|[1-9][0-9]*)$/.test(prop) && Number(prop) < 2 ** 32 - 1;
}

/** One recording session over one draft. */
class Recorder {
  constructor(root) {
    this.root = root;
    this.ops = [];
    this.closed = false;
    this.parents = new WeakMap(); // child -> { parent, key }
    this.proxies = new WeakMap(); // target -> proxy
  }

  check() {
    if (this.closed) throw new TypeError("this draft is no longer live: its change callback has returned");
  }

  /** The path from the root to `obj` (computed now: list indices shift). */
  pathOf(obj) {
    const path = [];
    while (obj !== this.root) {
      const link = this.parents.get(obj);
      if (!link) throw new TypeError("this object is not part of the document");
      let key = link.key;
      if (Array.isArray(link.parent)) {
        key = link.parent.indexOf(obj);
        if (key < 0) throw new TypeError("this object is no longer in the document");
      } else if (link.parent[key] !== obj) {
        throw new TypeError("this object is no longer in the document");
      }
      path.push(key);
      obj = link.parent;
    }
    return path.reverse();
  }

  record(obj, make) {
    this.check();
    this.ops.push(make(this.pathOf(obj)));
  }

  recordInc(counter, by) {
    this.check();
    const path = this.pathOf(counter);
    const key = path.pop();
    this.ops.push({ op: "inc", path, key, by });
  }

  /** What a read of `parent[key]` returns. */
  wrap(parent, key, value) {
    if (value === null || typeof value !== "object") return value;
    if (isContainer(value) || value instanceof Text || value instanceof Counter) {
      this.parents.set(value, { parent, key });
    }
    if (value instanceof Text || value instanceof Counter) {
      // The same Text / Counter object serves the next change too (the
      // handle keeps the draft tree between changes): point it at this
      // recording.
      if (value[HOOK] !== this) {
        Object.defineProperty(value, HOOK, { value: this, enumerable: false, configurable: true });
      }
      return value;
    }
    if (isContainer(value)) return this.proxy(value);
    return value;
  }

  proxy(target) {
    let p = this.proxies.get(target);
    if (!p) {
      p = new Proxy(target, Array.isArray(target) ? listHandler(this) : mapHandler(this));
      this.proxies.set(target, p);
    }
    return p;
  }
}

function mapHandler(rec) {
  return {
    get(target, prop, receiver) {
      if (prop === RAW) return target;
      if (typeof prop === "symbol") return Reflect.get(target, prop, receiver);
      if (!Object.prototype.hasOwnProperty.call(target, prop)) return Reflect.get(target, prop, receiver);
      return rec.wrap(target, prop, target[prop]);
    },
    set(target, prop, value) {
      if (typeof prop === "symbol") throw new TypeError("cannot store a symbol-keyed property");
      rec.check();
      const enc = encode(value);
      rec.record(target, (path) => ({ op: "put", path, key: prop, value: enc }));
      setOwn(target, prop, hydrate(enc));
      return true;
    },
    deleteProperty(target, prop) {
      if (typeof prop === "symbol") return Reflect.deleteProperty(target, prop);
      rec.check();
      if (Object.prototype.hasOwnProperty.call(target, prop)) {
        rec.record(target, (path) => ({ op: "del", path, key: prop }));
        delete target[prop];
      }
      return true;
    },
    defineProperty() {
      throw new TypeError("use assignment to change a document");
    },
    setPrototypeOf() {
      throw new TypeError("cannot change a document object's prototype");
    },
  };
}

function listHandler(rec) {
  const methods = {
    push(target) {
      return (...values) => {
        insertAt(target, target.length, values);
        return target.length;
      };
    },
    unshift(target) {
      return (...values) => {
        insertAt(target, 0, values);
        return target.length;
      };
    },
    pop(target) {
      return () => (target.length === 0 ? undefined : deleteAt(target, target.length - 1, 1)[0]);
    },
    shift(target) {
      return () => (target.length === 0 ? undefined : deleteAt(target, 0, 1)[0]);
    },
    splice(target) {
      return (...args) => {
        const len = target.length;
        if (args.length === 0) return [];
        let s = Math.trunc(Number(args[0])) || 0;
        s = s < 0 ? Math.max(len + s, 0) : Math.min(s, len);
        const d = args.length < 2 ? len - s : Math.min(Math.max(Math.trunc(Number(args[1])) || 0, 0), len - s);
        const values = args.slice(2);
        const removed = d > 0 ? deleteAt(target, s, d) : [];
        if (values.length > 0) insertAt(target, s, values);
        return removed;
      };
    },
    insertAt(target) {
      return (index, ...values) => {
        checkInt(index, "index");
        if (index < 0 || index > target.length) throw rangeError(`index ${index} out of range (length ${target.length})`);
        insertAt(target, index, values);
        return rec.proxy(target);
      };
    },
    deleteAt(target) {
      return (index, count = 1) => {
        checkInt(index, "index");
        checkInt(count, "count");
        if (index < 0 || count < 0 || index + count > target.length) {
          throw rangeError(`cannot delete ${count} elements at ${index} (length ${target.length})`);
        }
        if (count > 0) deleteAt(target, index, count);
        return rec.proxy(target);
      };
    },
  };
  for (const name of ["sort", "reverse", "fill", "copyWithin"]) {
    methods[name] = () => () => {
      throw new TypeError(`${name}() is not supported on document lists; use splice, insertAt or deleteAt`);
    };
  }

  function insertAt(target, index, values) {
    rec.check();
    const enc = values.map((v) => encode(v));
    rec.record(target, (path) => ({ op: "insert", path, index, values: enc }));
    target.splice(index, 0, ...enc.map(hydrate));
  }

  function deleteAt(target, index, count) {
    rec.check();
    rec.record(target, (path) => (count === 1 ? { op: "del", path, key: index } : { op: "del", path, key: index, count }));
    return target.splice(index, count);
  }

  return {
    get(target, prop, receiver) {
      if (prop === RAW) return target;
      if (typeof prop === "symbol") return Reflect.get(target, prop, receiver);
      if (isIndex(prop)) return rec.wrap(target, Number(prop), target[prop]);
      if (Object.prototype.hasOwnProperty.call(methods, prop)) return methods[prop](target);
      return Reflect.get(target, prop, receiver);
    },
    set(target, prop, value) {
      rec.check();
      if (prop === "length") {
        const n = checkInt(value, "length");
        if (n > target.length || n < 0) throw rangeError("a document list can only be shortened through length");
        if (n < target.length) deleteAt(target, n, target.length - n);
        return true;
      }
      if (!isIndex(prop)) throw new TypeError(`cannot set property ${String(prop)} on a document list`);
      const i = Number(prop);
      if (i === target.length) {
        insertAt(target, i, [value]);
      } else if (i < target.length) {
        const enc = encode(value);
        rec.record(target, (path) => ({ op: "put", path, key: i, value: enc }));
        target[i] = hydrate(enc);
      } else {
        throw rangeError(`index ${i} is past the end of the list (length ${target.length}); lists have no holes`);
      }
      return true;
    },
    deleteProperty(target, prop) {
      rec.check();
      if (!isIndex(prop)) throw new TypeError(`cannot delete property ${String(prop)} of a document list`);
      const i = Number(prop);
      if (i < target.length) deleteAt(target, i, 1);
      return true;
    },
    defineProperty() {
      throw new TypeError("use assignment or list methods to change a document");
    },
    setPrototypeOf() {
      throw new TypeError("cannot change a document object's prototype");
    },
  };
}

/**
 * Run `fn` on a draft built from `draft` (the typed-value form from
 * WasmRepo.draft) and return the ops it recorded. Throws whatever `fn`
 * throws; nothing is recorded then.
 */
export function recordChange(draft, fn) {
  return recordChangeOn(hydrate(draft), fn);
}

/**
 * Like recordChange, on an already hydrated draft `root`, which `fn`'s edits
 * update in place: afterwards `root` is the document with the recorded ops
 * applied (the next change can start from it). If `fn` throws, `root` is
 * left half-edited and must be discarded.
 */
export function recordChangeOn(root, fn) {
  if (typeof fn !== "function") throw new TypeError("change() takes a function");
  if (!isPlainObject(root)) throw new TypeError("the document root must be a map");
  const rec = new Recorder(root);
  try {
    const out = fn(rec.proxy(root));
    if (out && typeof out.then === "function") {
      throw new TypeError("change callbacks must be synchronous (do async work before calling change)");
    }
  } finally {
    rec.closed = true;
  }
  return rec.ops;
}

/** The ops that create a document whose root holds `initial`'s keys. */
export function initialOps(initial) {
  if (initial === undefined) return [];
  if (initial !== null && typeof initial === "object" && initial[RAW]) initial = initial[RAW];
  if (!isPlainObject(initial)) throw new TypeError("the initial document must be a plain object");
  const enc = encode(initial);
  return Object.keys(enc).map((key) => ({ op: "put", path: [], key, value: enc[key] }));
}
