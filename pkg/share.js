// Structural sharing for `doc()`: a document read again after a change keeps
// every unchanged object from the previous read, so `===` tells React (and
// any memoization) what changed. Everything `share` returns is frozen.

/**
 * `next` with each part that is deep-equal to the same part of `prev`
 * replaced by `prev`'s object. Returns `prev` itself when nothing differs.
 * Lists are compared index by index. New objects are frozen (`prev`'s
 * already are); byte arrays cannot be, and are shared when equal.
 */
export function share(prev, next) {
  if (prev === next || typeof next !== "object" || next === null) return next;
  if (next instanceof Uint8Array) return prev instanceof Uint8Array && sameBytes(prev, next) ? prev : next;
  if (next instanceof Date) {
    return prev instanceof Date && prev.getTime() === next.getTime() ? prev : Object.freeze(next);
  }
  const old = typeof prev === "object" && prev !== null && !ArrayBuffer.isView(prev) && !(prev instanceof Date) ? prev : undefined;
  if (Array.isArray(next)) {
    const from = Array.isArray(old) ? old : undefined;
    let same = from !== undefined && from.length === next.length;
    for (let i = 0; i < next.length; i++) {
      next[i] = share(from?.[i], next[i]);
      same &&= next[i] === from[i];
    }
    return same ? from : Object.freeze(next);
  }
  const from = old !== undefined && !Array.isArray(old) ? old : undefined;
  const keys = Object.keys(next);
  let same = from !== undefined && Object.keys(from).length === keys.length;
  for (const k of keys) {
    const had = from !== undefined && Object.prototype.hasOwnProperty.call(from, k);
    const v = share(had ? from[k] : undefined, next[k]);
    // (An own "__proto__" key must not be assigned: that sets the prototype.)
    if (v !== next[k]) Object.defineProperty(next, k, { value: v, enumerable: true, writable: true, configurable: true });
    same &&= had && v === from[k];
  }
  return same ? from : Object.freeze(next);
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
