// Types for the holdfast npm package (hand-written; see index.js).

/** The `name` of every Error holdfast throws or rejects with. */
export type HoldfastErrorName =
  /** The browser's storage quota or the server's disk is full; nothing of the failed commit was stored. */
  | "QuotaExceededError"
  /** Storage cannot be reached: closed, deleted, blocked by another connection, or never opened. */
  | "StorageUnavailableError"
  /** The storage transaction was aborted before it committed; none of its writes landed. */
  | "StorageAbortedError"
  /** A record read back failed verification (it was set aside). */
  | "StorageCorruptError"
  /** The operating system failed a read, write or sync (the server's log). */
  | "StorageIoError"
  /** Not an `automerge:` URL or a document id. */
  | "InvalidDocumentUrlError"
  /** Bytes given to `import` are not an Automerge document. */
  | "InvalidDocumentError"
  /** Heads given are not an array of hex change hashes of this document. */
  | "InvalidHeadsError"
  /** Options given to `Repo.open` (or another call) are not valid. */
  | "InvalidOptionsError"
  /** Not in storage and no peer has it (or the document is not open here). */
  | "DocumentUnavailableError"
  /** Not in storage and no peer has it, and this repo's database was reset by the browser: it may have existed here before. */
  | "DocumentLostError"
  /** The document was deleted, or is being deleted. */
  | "DocumentDeletedError"
  /** The document is still loading from storage. */
  | "DocumentLoadingError"
  /** A document with this id already exists. */
  | "DocumentExistsError"
  /** The change function threw or its edits were invalid; nothing changed. */
  | "ChangeRejectedError"
  /** The repo was closed. */
  | "RepoClosedError"
  /** `whenSynced()` on a repo opened without sync servers. */
  | "NoSyncServerError";

export interface HoldfastError extends Error {
  name: HoldfastErrorName;
}

export const ERROR_NAMES: readonly HoldfastErrorName[];

/** `automerge:<documentId>`, optionally followed by `#<heads>`. */
export type AutomergeUrl = `automerge:${string}`;
export type DocumentId = string;
/** A change hash as holdfast and automerge-repo 2.x hand it out: bs58check
 * of its 32 bytes (as in `automerge:<id>#<head>|<head>` URLs). Every heads
 * argument also takes automerge's 64-digit hex form. */
export type Head = string;
/** automerge-repo 2.x's `UrlHeads`. */
export type Heads = Head[];
export type UrlHeads = Heads;

/** Heads (bs58check or hex) as bs58check. Needs a Repo opened first (the
 * codec is in the wasm module). */
export function encodeHeads(heads: string[]): UrlHeads;
/** Heads (bs58check or hex) as hex change hashes (automerge's `getHeads`
 * form). Needs a Repo opened first. */
export function decodeHeads(heads: string[]): string[];

/** `"strict"`: IndexedDB strict durability; `"default"`: the browser ignores
 * the hint; `"memory"`: nothing survives a reload. */
export type Durability = "strict" | "default" | "memory";

/** Collaborative text. Assign `new Text("…")`; inside `change` a text field
 * is a Text whose edits are recorded. Positions count UTF-16 units. */
export class Text {
  constructor(value?: string);
  readonly value: string;
  readonly length: number;
  splice(index: number, deleteCount?: number, text?: string): void;
  insertAt(index: number, ...text: string[]): void;
  deleteAt(index: number, count?: number): void;
  /** Rich text (inside `change`, on text in the document): mark UTF-16
   * units `start..end` with `name` = `value`; `expand` says whether text
   * typed at an edge takes the mark (default "after"). */
  mark(start: number, end: number, name: string, value: MarkValue, expand?: ExpandMark): void;
  unmark(start: number, end: number, name: string, expand?: ExpandMark): void;
  toString(): string;
  toJSON(): string;
  valueOf(): string;
}

export type MarkValue = string | number | boolean | null | Uint8Array | Date;
export type ExpandMark = "before" | "after" | "both" | "none";
/** A mark on text, as `handle.marks(path)` and mark patches give it. */
export interface Mark {
  name: string;
  value: MarkValue;
  start: number;
  end: number;
}

/** A counter: concurrent increments add up. Assign `new Counter(n)`. */
export class Counter {
  constructor(value?: number);
  readonly value: number;
  /** Returns the new value. */
  increment(by?: number): number;
  decrement(by?: number): number;
  valueOf(): number;
  toString(): string;
  toJSON(): number;
}

/** What `doc()` returns for a document declared as `T`: text reads as a
 * string, a counter as a number. */
export type Materialized<T> = T extends Text
  ? string
  : T extends Counter
    ? number
    : T extends Date | Uint8Array
      ? T
      : T extends (infer U)[]
        ? Materialized<U>[]
        : T extends object
          ? { [K in keyof T]: Materialized<T[K]> }
          : T;

/** List helpers available on lists inside `change` (beside the usual
 * push / pop / shift / unshift / splice / index assignment). */
export interface DraftList<T> extends Array<T> {
  insertAt(index: number, ...values: T[]): this;
  deleteAt(index: number, count?: number): this;
}

/** The draft a `change` callback edits. Declare text fields as `Text` and
 * counters as `Counter` in `T`. */
export type Draft<T> = T extends Text | Counter | Date | Uint8Array
  ? T
  : T extends (infer U)[]
    ? DraftList<Draft<U>>
    : T extends object
      ? { -readonly [K in keyof T]: Draft<T[K]> }
      : T;

export type ChangeFn<T> = (doc: Draft<T>) => void;

/** A patch, in automerge JS's shapes; `path` ends with the key or index the
 * patch is about. */
export type Prop = string | number;
export type Patch =
  | { action: "put"; path: Prop[]; value: unknown; conflict?: boolean }
  | { action: "insert"; path: Prop[]; values: unknown[] }
  | { action: "splice"; path: Prop[]; value: string; marks?: Record<string, unknown> }
  | { action: "del"; path: Prop[]; length?: number }
  | { action: "inc"; path: Prop[]; value: number }
  | { action: "conflict"; path: Prop[] }
  | { action: "mark"; path: Prop[]; marks: { name: string; value: unknown; start: number; end: number }[] };

export interface DocHandleChangeEvent<T> {
  handle: DocHandle<T>;
  /** The durable document at `heads`: exactly what is on disk. Never
   * includes an edit made after this change that is not yet saved. */
  doc: Materialized<T>;
  patches: Patch[];
  /** Whether the durable change came from this repo, from peers, both
   * (several changes reported together), or from another tab of this
   * origin on the same IndexedDB database. */
  source: "local" | "remote" | "both" | "tab";
  heads: Heads;
}

export interface StorageRepairedEvent {
  documentId: DocumentId;
  url: AutomergeUrl;
  /** The storage keys of the records set aside as corrupt (kept, never loaded). */
  quarantined: string[][];
}

export interface DocHandleEvents<T> {
  /** Fires only once the change is durable. */
  change: (e: DocHandleChangeEvent<T>) => void;
  "storage-error": (error: HoldfastError) => void;
  "storage-repaired": (e: StorageRepairedEvent) => void;
  delete: (e: { handle: DocHandle<T> }) => void;
  /** A sync server's view of this document changed (see `syncState`). */
  "sync-state": (e: { handle: DocHandle<T>; state: SyncState; peerId: string }) => void;
  /** A peer's `broadcast`, decoded (CBOR, as automerge-repo encodes it). */
  "ephemeral-message": (e: { handle: DocHandle<T>; senderId: string; message: unknown }) => void;
  /** The same payload as received, undecoded (also for one that is no CBOR). */
  ephemeral: (e: { senderId: string; data: Uint8Array }) => void;
}

/** `"on-server"`: a connected sync server has every local change of the
 * document on its disk; `"local-only"`: not (yet). */
export type SyncState = "on-server" | "local-only";

/** `"online"`: a sync server is connected. */
export type ConnectionStatus = "online" | "connecting" | "offline";

/** The browser reset the repo's IndexedDB database: records holdfast had
 * made durable there may be gone. */
export interface StorageReset {
  /** `"data-loss"`: the browser said it discarded the data (`dataLoss`);
   * `"recreated"`: the database was created anew although this origin had
   * used it before. */
  reason: "data-loss" | "recreated";
  /** When it was detected (ms since the epoch). */
  detectedAt: number;
  detail: string;
  /** Whether this open detected it (else an earlier one did). */
  detectedNow: boolean;
}

export interface RepoEvents {
  /** Fires once, in a task after `Repo.open` resolved, when that open found
   * the database reset. */
  "storage-reset": (e: StorageReset) => void;
  peer: (e: { peerId: string; connected: boolean }) => void;
  status: (e: { status: ConnectionStatus }) => void;
  "storage-error": (e: { error: HoldfastError; documentIds: DocumentId[] }) => void;
  "storage-repaired": (e: StorageRepairedEvent) => void;
  /** A document's durable state advanced: every document in storage, open
   * or not (documents changed by other devices arrive on reconnect without
   * being opened). Fires only once the change is durable. */
  change: (e: RepoChangeEvent) => void;
}

export interface RepoChangeEvent {
  documentId: DocumentId;
  url: AutomergeUrl;
  /** The new durable heads. */
  heads: Heads;
  source: "local" | "remote" | "both" | "tab";
}

export class DocHandle<T = Record<string, unknown>> {
  private constructor();
  readonly documentId: DocumentId;
  readonly url: AutomergeUrl;
  readonly isDeleted: boolean;
  /** What the app sees now, as plain JS, INCLUDING edits not yet saved (a
   * `change` applies here at once, before its promise resolves; if its write
   * fails the document returns to its last durable state). The durable
   * document is the `doc` of the `change` event.
   *
   * Immutable and structurally shared: the same (frozen) object while the
   * heads are unchanged; after a change only the objects on the paths to
   * what changed are new, so `===` tells what changed (React, memo). */
  doc(): Materialized<T>;
  /** The current heads (bs58check; `decodeHeads` gives hex). */
  heads(): Heads;
  /** The marks on the text at `path` (e.g. `["body"]`). */
  marks(path: Prop[]): Mark[];
  /** Every change, oldest first, each as the heads right after it. */
  history(): Heads[];
  /** The patches from the document at `from` to it at `to` (now when omitted). */
  diff(from: Heads | string, to?: Heads | string): Patch[];
  /** A read-only view at `heads` (an array, or a URL's `<head>|<head>`
   * section), which must be durable changes of the document. */
  view(heads: Heads | string): DocView<T>;
  /** Record `fn`'s edits as one change. Resolves with the new heads once the
   * change is durable. If `fn` throws, nothing changes and the promise
   * rejects with that error. `fn` must be synchronous. */
  change(fn: ChangeFn<T>): Promise<Heads>;
  readonly syncState: SyncState;
  /** Resolves when a sync server has every local change on its disk.
   * Rejects with `RepoClosedError` / `DocumentDeletedError` if the repo is
   * closed or the document deleted first, and at once with
   * `NoSyncServerError` on a repo opened without `sync`. */
  whenSynced(): Promise<void>;
  /** Send an ephemeral message to peers of this document: any CBOR-able
   * value (objects, arrays, strings, numbers, booleans, null, Uint8Array,
   * Date, Map), encoded as automerge-repo encodes it; peers get it as
   * `ephemeral-message`. Throws a TypeError for what has no CBOR form. */
  broadcast(message: unknown): void;
  on<E extends keyof DocHandleEvents<T>>(event: E, listener: DocHandleEvents<T>[E]): this;
  once<E extends keyof DocHandleEvents<T>>(event: E, listener: DocHandleEvents<T>[E]): this;
  off<E extends keyof DocHandleEvents<T>>(event: E, listener: DocHandleEvents<T>[E]): this;
}

/** The document at fixed heads: read-only, never changes. */
export class DocView<T = Record<string, unknown>> {
  private constructor();
  readonly documentId: DocumentId;
  /** `automerge:<id>#<head>|<head>…` */
  readonly url: AutomergeUrl;
  /** The handle of the document as it is now. */
  readonly handle: DocHandle<T>;
  isReadOnly(): true;
  heads(): Heads;
  /** Frozen; the same object every time. */
  doc(): Materialized<T>;
  /** Rejects with `ChangeRejectedError`. */
  change(fn: ChangeFn<T>): Promise<never>;
}

export type WasmSource = BufferSource | URL | string | Response | WebAssembly.Module;

export type RepoOptions = ({ indexedDB: string; memory?: false } | { memory: true; indexedDB?: undefined }) & {
  /** The .wasm module; defaults to `wasm/holdfast_bg.wasm` next to index.js
   * (read from disk in node, fetched in browsers). */
  wasm?: WasmSource;
  /** Sync servers: `ws://` / `wss://` URLs, or `{ url, token }` for a
   * server with access control; reconnects with backoff. Several mean all:
   * the repo syncs with every one that is up (list every node of a
   * cluster). */
  sync?: string | SyncServer | (string | SyncServer)[];
};

/** A sync server that wants a token (a JWT; see holdfast-server's
 * `--auth-secret-file` / `--auth-jwks`). */
export interface SyncServer {
  /** `ws://` or `wss://` URL (its query is kept). */
  url: string;
  /** Sent as `?token=` on the URL. A function is called before every
   * connection attempt, reconnects included (return a fresh token there);
   * if it throws, rejects or returns no string, that attempt fails and is
   * retried with backoff. */
  token?: string | (() => string | Promise<string>);
}

/** `url` with `token` as its `token` query parameter. */
export function withToken(url: string, token: string): string;

export class Repo {
  private constructor();
  /** Open a repo persisted in IndexedDB database `indexedDB`, or in memory. */
  static open(options: RepoOptions): Promise<Repo>;
  /** Delete IndexedDB database `name` on purpose (close its repos first);
   * reopening it is then no `storage-reset`. */
  static deleteDatabase(name: string, options?: { wasm?: WasmSource }): Promise<void>;
  readonly durability: Durability;
  /** Whether the repo was opened with sync servers. */
  readonly syncing: boolean;
  /** The newest reset of this repo's database, or null. */
  readonly storageReset: StorageReset | null;
  readonly closed: boolean;
  /** The sync connection's status. Tabs of one origin on one database
   * share one connection (held by the `leader` tab); in the others this is
   * the leader's status, which carries their changes too. */
  readonly status: ConnectionStatus;
  /** Peers connected now (in a tab that is not the leader: the leader's). */
  readonly peers: string[];
  /** Whether this tab holds the sync connection for every tab of its
   * database (elected with the Web Locks API; where there is none, each
   * tab holds its own and this is true whenever the repo syncs). */
  readonly leader: boolean;
  /** Close sync connections until `goOnline()`; local edits go on. A
   * leader tab hands the connection to another tab of its database, through
   * which this tab's changes still reach the server. */
  goOffline(): void;
  goOnline(): void;
  /** Create a document; resolves once its initial state is durable. */
  create<T extends object = Record<string, unknown>>(initial?: T): Promise<DocHandle<T>>;
  /** Open a document from memory, storage, or peers. A URL with heads
   * (`automerge:<id>#<head>|…`) gives a read-only `DocView` at them.
   * Rejects with `DocumentUnavailableError` when neither storage nor a peer
   * has it, or `DocumentLostError` when, in addition, the database was
   * reset (`storageReset`). */
  find<T = Record<string, unknown>>(url: `automerge:${string}#${string}`): Promise<DocView<T>>;
  find<T = Record<string, unknown>>(url: AutomergeUrl | DocumentId | DocHandle<T>): Promise<DocHandle<T>>;
  /** Every handle this repo has given out, by document id. */
  readonly handles: Record<DocumentId, DocHandle<unknown>>;
  delete(url: AutomergeUrl | DocumentId | DocHandle<unknown>): Promise<void>;
  /** The document's durable history (automerge save format). */
  export(url: AutomergeUrl | DocumentId | DocHandle<unknown>): Promise<Uint8Array>;
  import<T = Record<string, unknown>>(bytes: Uint8Array | ArrayBuffer): Promise<DocHandle<T>>;
  close(): Promise<void>;
  on<E extends keyof RepoEvents>(event: E, listener: RepoEvents[E]): this;
  once<E extends keyof RepoEvents>(event: E, listener: RepoEvents[E]): this;
  off<E extends keyof RepoEvents>(event: E, listener: RepoEvents[E]): this;
}

/** The document id of a URL (`automerge:<id>[#heads]`) or bare id; throws
 * `InvalidDocumentUrlError`. */
export function parseUrl(url: AutomergeUrl | DocumentId | DocHandle<unknown>): DocumentId;
export function toUrl(documentId: DocumentId): AutomergeUrl;
