// Issue 10, point 5: the demo's second device, which only RECEIVES the shared
// board and its note from the server (a fresh IndexedDB, no edits of its
// own), must show "saved on server" on both. Everything it has came from
// the server, so the server's advertised heads cover its heads from the
// moment the documents arrive; no later edit is needed to learn that.
// Driven through the demo app's UI (the `.saved` indicators' data-device /
// data-server attributes), served by holdfast-server as in demo.test.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, demoSite, openDemo, waitIn, call } from "./harness.mjs";

let server, browser, site;
before(async () => {
  site = demoSite();
  server = await startServer({ www: site.dir });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  site?.cleanup();
});

/** The board's and every note's indicator as { device, server }. */
const indicators = (page) =>
  page.evaluate(() => ({
    board: { ...document.querySelector("#board-saved").dataset },
    notes: [...document.querySelectorAll("li.note .saved")].map((el) => ({ ...el.dataset })),
  }));

/** Wait until the board's indicator and `notes` notes' indicators all say
 * saved on the device and on the server; on a timeout the error shows them. */
async function boardAndNotesOnServer(page, notes, what) {
  try {
    await waitIn(
      page,
      (notes) => {
        const els = [document.querySelector("#board-saved"), ...document.querySelectorAll("li.note .saved")];
        return els.length === 1 + notes && els.every((el) => el?.dataset.device === "saved" && el.dataset.server === "saved");
      },
      notes,
      what,
    );
  } catch (e) {
    e.message += `\nindicators now: ${JSON.stringify(await indicators(page))}`;
    throw e;
  }
}

test("a device that only received the shared board shows it and its note saved on the server", { timeout: 90_000 }, async () => {
  // Device 1 makes a board with one note; both reach the server.
  const a = await openDemo(browser, server.http, "?db=receive-only-a");
  await waitIn(a, () => document.querySelector("#status").dataset.status === "online", undefined, "A to be online");
  await a.fill("#board-title", "Shared");
  await a.click("#add-note");
  const note = a.locator("li.note").first();
  await note.locator(".note-title").waitFor();
  await note.locator(".note-title").pressSequentially("From A");
  await boardAndNotesOnServer(a, 1, "A's board and note to be saved on the server");
  const boardHeadsA = await a.evaluate(() => holdfastDemo.board.heads());

  // Device 2 (its own IndexedDB) opens the share link and edits nothing.
  const shared = await a.getAttribute("#share", "href");
  assert.match(shared, /\?db=receive-only-a#automerge:/);
  const b = await openDemo(browser, server.http, shared.slice(server.http.length + 1).replace("db=receive-only-a", "db=receive-only-b"));
  await waitIn(
    b,
    () => [...document.querySelectorAll("li.note")].some((li) => li.querySelector(".note-title").value === "From A"),
    undefined,
    "B to show A's note",
  );
  assert.equal(await b.inputValue("#board-title"), "Shared");

  // B's indicators turn to "saved on server" by themselves.
  await boardAndNotesOnServer(b, 1, "B's board and note to say saved on the server, without B editing");
  assert.deepEqual(await indicators(b), {
    board: { device: "saved", server: "saved" },
    notes: [{ device: "saved", server: "saved" }],
  });
  assert.match(await b.textContent("#board-saved"), /saved on server/);
  assert.match(await b.textContent("li.note .saved"), /saved on server/);

  // B made no change (its board is at A's heads); both of its handles say
  // on-server and their whenSynced() resolves.
  const state = await call(
    b,
    async () => {
      const hs = [...holdfastDemo.handles.values()];
      await Promise.all(hs.map((h) => h.whenSynced()));
      return { board: holdfastDemo.board.heads(), states: hs.map((h) => h.syncState) };
    },
    undefined,
    "B's handles' whenSynced() to resolve",
  );
  assert.deepEqual(state.board, boardHeadsA, "B did not edit the board");
  assert.deepEqual(state.states, ["on-server", "on-server"]);
  assert.deepEqual(a.hfErrors, []);
  assert.deepEqual(b.hfErrors, []);
  await a.context().close();
  await b.context().close();
});
