// The other tabs (and workers) of this origin on the same IndexedDB
// database: hints about commits, and one tab elected to hold the sync
// connection for all of them. See docs/design.md §5e.

/**
 * A BroadcastChannel named `holdfast:<database>` and, where the browser has
 * the Web Locks API, a lock named `holdfast:<database>:sync` whose holder
 * is the leader: the one tab that connects to the sync servers.
 *
 * Every message is a hint; IndexedDB holds the truth:
 * - `{ documentIds }`: the sender made commits to these documents durable.
 * - `{ deleted }`: the sender deleted these documents.
 * - `{ type: "hello" }`: a tab opened; the leader answers with its state,
 *   and opens what the index lists that it has not heard of.
 * - `{ type: "leader" }`: the sender just became the leader.
 * - `{ type: "bye" }`: the leader stepped down (closed or went offline).
 * - `{ type: "state", status, peers }`: the leader's connection.
 * - `{ coverage: [[documentId, peerId, onServer, heads]] }`: what the
 *   leader's servers acknowledged (heads: the leader's heads the report is
 *   about).
 * - `{ find: [documentId] }`: a tab wants these documents from the
 *   servers; the leader finds them (they reach the tab through IndexedDB).
 * - `{ unavailable: [documentId] }`: the leader's servers do not have
 *   them; a find waiting for them fails.
 */
export class Tabs {
  #channel;
  #lockName;
  #hints = new Map(); // message key -> ids posted at the end of this task
  #onVisible = null;
  #lock = null; // { abort, release } while competing for or holding the lock
  #leader = false;

  /** null where there is no BroadcastChannel (then nothing is shared live). */
  static open(database) {
    if (typeof BroadcastChannel !== "function") return null;
    const channel = new BroadcastChannel(`holdfast:${database}`);
    // In node it would keep the process alive until closed.
    channel.unref?.();
    return new Tabs(channel, database);
  }

  constructor(channel, database) {
    this.#channel = channel;
    this.#lockName = `holdfast:${database}:sync`;
  }

  /** Whether tabs can elect a leader here (the Web Locks API exists). */
  static get canElect() {
    return typeof globalThis.navigator?.locks?.request === "function";
  }

  /** Whether this tab holds the lock. */
  get leader() {
    return this.#leader;
  }

  /** `onMessage(msg)` for every message of another tab; `onVisible()`
   * when this tab becomes visible or gets focus (messages may have been
   * lost while it slept or another tab died mid-way). */
  listen(onMessage, onVisible) {
    this.#channel.onmessage = (e) => {
      if (e.data && typeof e.data === "object") onMessage(e.data);
    };
    if (typeof document === "object" && typeof document.addEventListener === "function") {
      this.#onVisible = () => {
        if (document.visibilityState === "visible") onVisible();
      };
      document.addEventListener("visibilitychange", this.#onVisible);
      globalThis.addEventListener?.("focus", this.#onVisible);
    }
  }

  post(msg) {
    try {
      this.#channel.postMessage(msg);
    } catch {
      // Closed meanwhile.
    }
  }

  /** Post `{ [key]: [items] }` once at the end of this task, for every
   * item given meanwhile. */
  hint(key, item) {
    let ids = this.#hints.get(key);
    if (!ids) {
      this.#hints.set(key, (ids = new Set()));
      queueMicrotask(() => {
        this.#hints.delete(key);
        this.post({ [key]: [...ids] });
      });
    }
    ids.add(item);
  }

  /** Ask for the lock; `onElected()` runs once it is held (at once when no
   * other tab holds it, or when the holder closes, crashes or resigns).
   * The browser releases a lock whose tab dies. */
  compete(onElected) {
    if (this.#lock) return;
    const abort = new AbortController();
    const lock = { abort, release: null };
    this.#lock = lock;
    navigator.locks
      .request(this.#lockName, { signal: abort.signal }, () => {
        if (this.#lock !== lock) return undefined; // resigned meanwhile
        this.#leader = true;
        onElected();
        return new Promise((resolve) => (lock.release = resolve));
      })
      .catch(() => {
        // Aborted before it was granted: resigned or closed.
      });
  }

  /** Stop holding (or waiting for) the lock; another tab takes over. */
  resign() {
    const lock = this.#lock;
    this.#lock = null;
    if (!lock) return;
    if (this.#leader) this.post({ type: "bye" });
    this.#leader = false;
    lock.abort.abort();
    lock.release?.();
  }

  close() {
    this.resign();
    this.#channel.close();
    if (this.#onVisible) {
      document.removeEventListener("visibilitychange", this.#onVisible);
      globalThis.removeEventListener?.("focus", this.#onVisible);
    }
  }
}
