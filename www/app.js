// holdfast notes: an offline-first shared board built on the `holdfast` npm
// package the way an application would use it. A board document holds the
// ordered list of note URLs; every note is its own document { title, body },
// with `body` an Automerge text so that concurrent typing merges.
//
// Query parameters: ?db=<IndexedDB name> (default "holdfast-notes"),
// ?sync=<ws url> (default: this server's /sync; "none" to stay local).
import { Repo, Text } from "./pkg/index.js";

const $ = (sel, root = document) => root.querySelector(sel);
const params = new URLSearchParams(location.search);
const syncParam = params.get("sync");
const defaultSync = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/sync`;
const sync = syncParam === "none" ? [] : [syncParam ?? defaultSync];
const dbName = params.get("db") ?? "holdfast-notes";

const repo = await Repo.open({ indexedDB: dbName, sync });

// ------------------------------------------------------------- save state

/** Per document: local changes not yet durable, and the last storage error. */
const pending = new Map();
const failed = new Map();

function track(handle, promise) {
  const id = handle.documentId;
  pending.set(id, (pending.get(id) ?? 0) + 1);
  failed.delete(id);
  renderSaved(handle);
  promise
    .catch((err) => failed.set(id, err))
    .finally(() => {
      pending.set(id, pending.get(id) - 1);
      renderSaved(handle);
    });
  return promise;
}

const savedEls = new Map(); // documentId -> element

function renderSaved(handle) {
  const el = savedEls.get(handle.documentId);
  if (!el) return;
  const id = handle.documentId;
  const err = failed.get(id);
  const onDevice = !err && (pending.get(id) ?? 0) === 0;
  const onServer = onDevice && handle.syncState === "on-server";
  el.innerHTML = "";
  const dev = document.createElement("span");
  dev.className = `dev ${onDevice ? "yes" : "no"}`;
  dev.textContent = err ? "✗ not saved" : onDevice ? "✓ saved on this device" : "… saving";
  const srv = document.createElement("span");
  srv.className = `srv ${onServer ? "yes" : "no"}`;
  srv.textContent = onServer ? " · ✓ saved on server" : " · not on server yet";
  el.append(dev, srv);
  el.dataset.device = err ? "failed" : onDevice ? "saved" : "saving";
  el.dataset.server = onServer ? "saved" : "pending";
}

function watchSaved(handle, el) {
  savedEls.set(handle.documentId, el);
  handle.on("sync-state", () => renderSaved(handle));
  renderSaved(handle);
}

// ------------------------------------------------------------- connection

const statusEl = $("#status");
const toggle = $("#toggle-online");
let wantOffline = false;
function renderStatus() {
  statusEl.textContent = repo.status;
  statusEl.dataset.status = repo.status;
  toggle.textContent = wantOffline ? "Go online" : "Go offline";
}
repo.on("status", renderStatus);
toggle.addEventListener("click", () => {
  wantOffline = !wantOffline;
  if (wantOffline) repo.goOffline();
  else repo.goOnline();
  renderStatus();
});
renderStatus();

const banner = $("#banner");
function showError(error) {
  banner.hidden = false;
  banner.textContent = `Could not save (${error.name}: ${error.message}). Showing the last saved state.`;
}
// The browser discarded this device's database (or it was recreated):
// say so; what the server holds comes back as the board is opened.
if (repo.storageReset?.detectedNow) {
  banner.hidden = false;
  banner.textContent =
    `This browser discarded the notes saved on this device (${repo.storageReset.detail}). ` +
    (sync.length > 0 ? "Notes saved on the server are loaded from it again." : "Notes that were only on this device are lost.");
}
repo.on("storage-error", ({ error, documentIds }) => {
  showError(error);
  for (const id of documentIds) {
    const h = handles.get(id);
    if (h) rerender(h);
  }
});

// ------------------------------------------------------------- text editing

/** The single edit that turns `a` into `b` (common prefix and suffix). */
function diff(a, b) {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  return { pos: start, del: endA - start, ins: b.slice(start, endB) };
}

/** Show `text` in `el` (a textarea or input), keeping the caret in place. */
function setText(el, text) {
  if (el.value === text) return;
  if (document.activeElement !== el) {
    el.value = text;
    return;
  }
  const { pos, del, ins } = diff(el.value, text);
  const shift = (i) => (i <= pos ? i : i >= pos + del ? i - del + ins.length : pos + ins.length);
  const [s, e] = [shift(el.selectionStart), shift(el.selectionEnd)];
  el.value = text;
  el.setSelectionRange(s, e);
}

// ------------------------------------------------------------- notes

const handles = new Map();
const rerenders = new Map();
function rerender(h) {
  rerenders.get(h.documentId)?.();
}

async function mountNote(url, li) {
  const h = await repo.find(url);
  handles.set(h.documentId, h);
  const title = $(".note-title", li);
  const body = $(".note-body", li);
  let known = "";
  const render = () => {
    const d = h.doc();
    setText(title, d.title ?? "");
    known = d.body ?? "";
    setText(body, known);
  };
  rerenders.set(h.documentId, render);
  render();
  watchSaved(h, $(".saved", li));
  h.on("change", render);
  title.addEventListener("input", () => {
    const value = title.value;
    track(h, h.change((d) => { d.title = value; }));
  });
  body.addEventListener("input", () => {
    const { pos, del, ins } = diff(known, body.value);
    known = body.value;
    track(h, h.change((d) => d.body.splice(pos, del, ins)));
  });
}

// ------------------------------------------------------------- the board

async function openBoard() {
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash.startsWith("automerge:")) return repo.find(hash);
  const b = await repo.create({ title: "Notes", notes: [] });
  history.replaceState(null, "", `#${b.url}`);
  return b;
}

const board = await openBoard();
handles.set(board.documentId, board);
const share = $("#share");
share.href = location.href;
share.textContent = location.href;
const boardTitle = $("#board-title");
watchSaved(board, $("#board-saved"));
boardTitle.addEventListener("input", () => {
  const value = boardTitle.value;
  track(board, board.change((d) => { d.title = value; }));
});

const list = $("#notes");
const template = $("#note-template");
const mounted = new Map(); // note url -> li

function renderBoard() {
  const d = board.doc();
  setText(boardTitle, d.title ?? "");
  const urls = d.notes ?? [];
  for (const [url, li] of mounted) {
    if (!urls.includes(url)) {
      li.remove();
      mounted.delete(url);
    }
  }
  urls.forEach((url, i) => {
    let li = mounted.get(url);
    if (!li) {
      li = template.content.firstElementChild.cloneNode(true);
      li.dataset.url = url;
      $(".up", li).addEventListener("click", () => move(url, -1));
      $(".down", li).addEventListener("click", () => move(url, +1));
      $(".delete", li).addEventListener("click", () => remove(url));
      mounted.set(url, li);
      mountNote(url, li).catch((e) => {
        $(".saved", li).textContent = `unavailable (${e.name})`;
      });
    }
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
}
rerenders.set(board.documentId, renderBoard);

function move(url, by) {
  track(board, board.change((d) => {
    const i = d.notes.indexOf(url);
    const j = i + by;
    if (i < 0 || j < 0 || j >= d.notes.length) return;
    d.notes.splice(i, 1);
    d.notes.splice(j, 0, url);
  }));
  renderBoard();
}

function remove(url) {
  track(board, board.change((d) => {
    const i = d.notes.indexOf(url);
    if (i >= 0) d.notes.splice(i, 1);
  }));
  renderBoard();
}

async function addNote() {
  const note = await repo.create({ title: "", body: new Text("") });
  await track(board, board.change((d) => { d.notes.push(note.url); }));
  renderBoard();
  $(`li[data-url="${CSS.escape(note.url)}"] .note-title`)?.focus();
}
// A failed create or board change is already shown (banner, board's saved
// state, board re-rendered); don't leave it as an unhandled rejection.
$("#add-note").addEventListener("click", () => addNote().catch(showError));

board.on("change", renderBoard);
renderBoard();

// For tests and the curious.
window.holdfastDemo = { repo, board, handles, ready: true };
document.body.dataset.ready = "true";
