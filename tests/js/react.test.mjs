// holdfast/react with React 19 and React Testing Library, in node (jsdom),
// over the real wasm engine: a memory repo for the document hooks, and a
// real holdfast-server on 127.0.0.1 for useSyncState. Needs
// `scripts/build-pkg.sh --dev` and `cargo build -p holdfast-server`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JSDOM } from "jsdom";
import "./node-ws.mjs"; // a WebSocket for the wasm module
import { startServer } from "./server.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const pkg = join(here, "..", "..", "pkg");
if (!existsSync(join(pkg, "wasm", "holdfast_bg.wasm"))) {
  throw new Error("pkg/wasm is not built: run scripts/build-pkg.sh --dev (make test does)");
}
// The package as an app installs it: inside node_modules, where its
// `import "react"` finds this directory's React (pkg/ has no node_modules).
const installed = join(here, "node_modules", ".holdfast-under-test");
rmSync(installed, { recursive: true, force: true });
mkdirSync(installed, { recursive: true });
for (const f of ["index.js", "draft.js", "tabs.js", "share.js", "react.js", "package.json"]) cpSync(join(pkg, f), join(installed, f));
symlinkSync(join(pkg, "wasm"), join(installed, "wasm"));

// A DOM for React Testing Library.
const dom = new JSDOM("<!doctype html><html><body></body></html>");
for (const k of ["window", "document", "navigator", "HTMLElement", "Node", "Text", "Event", "MutationObserver", "getComputedStyle"]) {
  if (!(k in globalThis) || k === "window" || k === "document") globalThis[k] = k === "window" ? dom.window : dom.window[k];
}
globalThis.IS_REACT_ACT_ENVIRONMENT = true;

const React = await import("react");
const { render, screen, act, waitFor, cleanup } = await import("@testing-library/react");
const { Repo } = await import(join(installed, "index.js"));
const { RepoProvider, useDocument, useHandle, useRepo, useSyncState } = await import(join(installed, "react.js"));
const h = React.createElement;

let server, data;
before(async () => {
  data = mkdtempSync(join(tmpdir(), "holdfast-react-"));
  server = await startServer(data);
});
after(async () => {
  cleanup();
  await server?.stop();
  if (data) rmSync(data, { recursive: true, force: true });
  rmSync(installed, { recursive: true, force: true });
});

test("useDocument renders the document, re-renders on change, and memo skips what did not change", async () => {
  const repo = await Repo.open({ memory: true });
  const handle = await repo.create({ title: "Groceries", items: [{ label: "milk" }, { label: "eggs" }] });
  const renders = new Map();
  const Item = React.memo(function Item({ item }) {
    renders.set(item.label, (renders.get(item.label) ?? 0) + 1);
    return h("li", null, item.label);
  });
  let change;
  function List({ url }) {
    const [doc, changeDoc] = useDocument(url);
    change = changeDoc;
    if (!doc) return h("p", null, "loading");
    return h("div", null, h("h1", null, doc.title), h("ul", null, doc.items.map((item, i) => h(Item, { key: i, item }))));
  }
  render(h(RepoProvider, { repo }, h(List, { url: handle.url })));
  assert.equal(screen.getByText("loading").tagName, "P");
  await screen.findByText("Groceries");
  assert.deepEqual(Object.fromEntries(renders), { milk: 1, eggs: 1 });

  // A change through the hook: rendered at once (before it is durable
  // too), only the edited item renders again.
  let durable;
  await act(async () => {
    durable = change((d) => {
      d.items[1].label = "bread";
    });
  });
  await screen.findByText("bread");
  assert.equal(renders.get("milk"), 1, "the unchanged item was not rendered again");
  assert.ok(Array.isArray(await durable), "change resolves with the heads");

  // A change made through the handle elsewhere reaches the component too.
  await act(async () => {
    await handle.change((d) => {
      d.title = "Shopping";
    });
  });
  await screen.findByText("Shopping");
  assert.equal(renders.get("milk"), 1);

  // Deleted: the hook's doc becomes undefined.
  await act(async () => {
    await repo.delete(handle.url);
  });
  await screen.findByText("loading");
  cleanup();
  await repo.close();
});

test("useHandle and useRepo; a document nobody has reaches the error boundary; no provider throws", async () => {
  const repo = await Repo.open({ memory: true });
  const other = await Repo.open({ memory: true });
  const elsewhere = await other.create({ v: 1 });
  const mine = await repo.create({ v: 2 });
  class Boundary extends React.Component {
    state = { error: null };
    static getDerivedStateFromError(error) {
      return { error };
    }
    render() {
      return this.state.error ? h("p", null, `error: ${this.state.error.name}`) : this.props.children;
    }
  }
  function Show({ url }) {
    const r = useRepo();
    const found = useHandle(url);
    return h("p", null, found ? `found ${found.doc().v} in ${r === repo ? "the provided repo" : "?"}` : "finding");
  }
  const quiet = console.error;
  console.error = () => {}; // React logs each render error it hands on
  try {
    render(h(RepoProvider, { repo }, h(Show, { url: mine.url }), h(Boundary, null, h(Show, { url: elsewhere.url }))));
    await screen.findByText("found 2 in the provided repo");
    await screen.findByText("error: DocumentUnavailableError");
    cleanup();
    assert.throws(() => render(h(Show, { url: mine.url })), /no <RepoProvider/);
  } finally {
    console.error = quiet;
    cleanup();
  }
  await other.close();
  await repo.close();
});

test("useSyncState goes from local-only to on-server once the server has the change", async () => {
  const repo = await Repo.open({ memory: true, sync: server.url });
  const offline = await Repo.open({ memory: true });
  try {
    const handle = await offline.create({ n: 1 });
    const copy = await repo.import(await offline.export(handle.url));
    const seen = [];
    function State({ url }) {
      const state = useSyncState(url);
      seen.push(state);
      return h("p", null, `state: ${state ?? "finding"}`);
    }
    render(h(RepoProvider, { repo }, h(State, { url: copy.url })));
    await waitFor(() => assert.ok(screen.getByText("state: on-server")), { timeout: 15_000 });
    assert.equal(seen[0], undefined, "nothing before the handle is found");
    assert.equal(seen.at(-1), "on-server");
  } finally {
    cleanup();
    await offline.close();
    await repo.close();
  }
});
