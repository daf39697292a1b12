// Type-checked, never run: the whole public API of the holdfast package as
// an app uses it, against pkg/index.d.ts (`types.test.mjs` runs
// `tsc --noEmit -p tests/js/types`). Each `@ts-expect-error` is a misuse the
// types must refuse: tsc fails if one of them compiles.
import {
  Counter,
  ERROR_NAMES,
  Repo,
  Text,
  parseUrl,
  toUrl,
  withToken,
  type AutomergeUrl,
  type DocHandle,
  type DocHandleChangeEvent,
  type Draft,
  type HoldfastError,
  type HoldfastErrorName,
  type Heads,
  type Materialized,
  type Patch,
  type StorageReset,
  type SyncState,
} from "../../../pkg/index.js";

interface Note {
  title: string;
  body: Text;
  likes: Counter;
  tags: string[];
  items: { done: boolean; label: string }[];
  meta: { created: Date; thumb?: Uint8Array };
}

export async function app(): Promise<void> {
  const repo = await Repo.open({
    indexedDB: "notes",
    sync: ["ws://localhost:3030", { url: "wss://sync.example", token: async () => "jwt" }],
  });
  const memory = await Repo.open({ memory: true, wasm: new URL("https://cdn.example/holdfast_bg.wasm") });
  // @ts-expect-error: a repo is in IndexedDB or in memory, not both
  await Repo.open({ indexedDB: "x", memory: true });

  const h: DocHandle<Note> = await repo.create<Note>({
    title: "Groceries",
    body: new Text("Hello"),
    likes: new Counter(0),
    tags: [],
    items: [],
    meta: { created: new Date() },
  });
  const url: AutomergeUrl = h.url;
  const same = await repo.find<Note>(url);
  await repo.find<Note>(h);
  await repo.find(parseUrl(url));

  // Reads: text as a string, a counter as a number.
  const d: Materialized<Note> = h.doc();
  const title: string = d.title;
  const body: string = d.body;
  const likes: number = d.likes;
  const created: Date = d.meta.created;
  const thumb: Uint8Array | undefined = d.meta.thumb;
  const firstLabel: string | undefined = d.items[0]?.label;
  // @ts-expect-error: text reads as a string, not a Text
  d.body.splice(0, 1);
  void [title, body, likes, created, thumb, firstLabel, same, memory];

  // Edits: Text and Counter as typed values, lists with insertAt / deleteAt.
  const heads: Heads = await h.change((doc: Draft<Note>) => {
    doc.title = "Shopping";
    doc.body.splice(5, 0, " world");
    doc.body.insertAt(0, ">");
    doc.body.deleteAt(0);
    doc.body.mark(0, 5, "bold", true);
    doc.body.mark(0, 5, "link", "https://x", "none");
    doc.body.unmark(0, 2, "bold");
    // @ts-expect-error: a mark's value is a scalar
    doc.body.mark(0, 1, "x", { a: 1 });
    doc.likes.increment(2);
    doc.likes.decrement();
    doc.tags.push("food");
    doc.items.insertAt(0, { done: false, label: "milk" });
    doc.items.deleteAt(0);
    doc.meta.thumb = new Uint8Array([1]);
    // @ts-expect-error: a counter field takes a Counter, not a number
    doc.likes = 3;
    // @ts-expect-error: no such field
    doc.missing = 1;
  });
  const head: string | undefined = heads[0];
  const current: Heads = h.heads();
  const marks: { name: string; start: number; end: number }[] = h.marks(["body"]);
  void marks;
  const history: Heads[] = h.history();
  const patches: Patch[] = h.diff(history[0] ?? [], current);
  const then = h.view(current).doc().title;
  void [history, patches, then];
  void [head, current];

  // Events: the durable document, its patches and where it came from.
  h.on("change", (e: DocHandleChangeEvent<Note>) => {
    const saved: string = e.doc.title;
    const patches: Patch[] = e.patches;
    const source: "local" | "remote" | "both" | "tab" = e.source;
    void [saved, patches, source];
  });
  h.on("storage-error", (e: HoldfastError) => {
    const name: HoldfastErrorName = e.name;
    void name;
  });
  h.on("sync-state", ({ state }) => {
    const s: SyncState = state;
    void s;
  });
  h.once("delete", ({ handle }) => void handle.documentId);
  h.on("ephemeral", ({ senderId, data }) => void [senderId, data]);
  h.on("ephemeral-message", ({ handle, senderId, message }) => void [handle.url, senderId, message]);
  // @ts-expect-error: no such event
  h.on("chnage", () => {});
  repo.on("change", ({ documentId, heads: after, source }) => void [documentId, after, source]);
  repo.on("storage-reset", (e: StorageReset) => void e.reason);
  repo.on("status", ({ status }) => void status);
  repo.on("peer", ({ peerId, connected }) => void [peerId, connected]);

  const state: SyncState = h.syncState;
  await h.whenSynced();
  h.broadcast({ cursor: 3 });
  void state;

  const names: readonly HoldfastErrorName[] = ERROR_NAMES;
  try {
    await repo.find("automerge:nothing");
  } catch (e) {
    if (e instanceof Error && names.includes(e.name as HoldfastErrorName)) {
      const he = e as HoldfastError;
      void he.name;
    }
  }

  const bytes: Uint8Array = await repo.export(h);
  const copy = await repo.import<Note>(bytes);
  void copy.doc().title;
  await repo.delete(copy.url);
  const reset: StorageReset | null = repo.storageReset;
  const leader: boolean = repo.leader;
  const peers: string[] = repo.peers;
  repo.goOffline();
  repo.goOnline();
  void [reset, leader, peers, toUrl(h.documentId), withToken("ws://x", "t")];
  await repo.close();
  await Repo.deleteDatabase("notes");
}
