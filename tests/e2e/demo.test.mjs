// The demo app (www/) end to end, served by holdfast-server the way `make
// demo` serves it (harness.demoSite: $CARGO_TARGET_DIR/demo-site if it is
// current, else the same site assembled from www/ + pkg/ with the dev wasm),
// driven only through its UI: clicks, typing, and the `.saved` indicators'
// data-device / data-server attributes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, startServer, launchBrowser, demoSite, openDemo, gotoDemo, waitIn } from "./harness.mjs";

let server, browser, site;
before(async () => {
  site = demoSite();
  console.log(`demo: serving ${site.kind === "demo-site" ? "the built demo site" : "a demo site assembled from www/ + pkg/ (dev wasm)"}: ${site.dir}`);
  server = await startServer({ www: site.dir });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  site?.cleanup();
});

/** The `li.note` elements' title and body, in board order. */
const notesOf = (page) =>
  page.$$eval("li.note", (lis) => lis.map((li) => ({ title: li.querySelector(".note-title").value, body: li.querySelector(".note-body").value })));

/** Every `.saved` indicator (board + notes) as [device, server] pairs. */
const savedStates = (page) => page.$$eval(".saved", (els) => els.map((el) => [el.dataset.device, el.dataset.server]));

/** Wait until every `.saved` shows data-device=saved (and, if `server`,
 * data-server=saved). */
function allSaved(page, server, what) {
  return waitIn(
    page,
    (server) => {
      const els = [...document.querySelectorAll(".saved")];
      return els.length > 0 && els.every((el) => el.dataset.device === "saved" && (!server || el.dataset.server === "saved"));
    },
    server,
    what,
  );
}

const status = (page) => page.textContent("#status");

/** Click "+ Add note" and type a title and a body into the new (last) note. */
async function addNote(page, title, body) {
  const before = await page.locator("li.note").count();
  await page.click("#add-note");
  const note = page.locator("li.note").nth(before);
  await note.locator(".note-title").waitFor();
  await note.locator(".note-title").pressSequentially(title);
  await note.locator(".note-body").pressSequentially(body);
  return note;
}

test("two devices share a board, type offline into the same note, and converge", { timeout: 90_000 }, async () => {
  const a = await openDemo(browser, server.http, "?db=demo-a");
  await waitIn(a, () => document.querySelector("#status").dataset.status === "online", undefined, "A to be online");
  await a.fill("#board-title", "Groceries");
  const note = await addNote(a, "Shopping", "milk, eggs");
  await allSaved(a, true, "A's board and note to be saved on the server");

  // B opens A's share link (…#automerge:<board>) in another context (its
  // own IndexedDB, like another device).
  const shared = await a.getAttribute("#share", "href");
  assert.equal(shared, a.url());
  assert.ok(shared.startsWith(`${server.http}/`));
  assert.match(shared, /#automerge:[1-9A-HJ-NP-Za-km-z]+$/);
  const b = await openDemo(browser, server.http, shared.slice(server.http.length + 1));
  await waitIn(
    b,
    () => [...document.querySelectorAll("li.note")].some((li) => li.querySelector(".note-title").value === "Shopping" && li.querySelector(".note-body").value === "milk, eggs"),
    undefined,
    "B to show A's note",
  );
  assert.equal(await b.inputValue("#board-title"), "Groceries");

  // Both go offline with the app's button.
  for (const page of [a, b]) {
    await page.click("#toggle-online");
    await waitIn(page, () => document.querySelector("#status").dataset.status === "offline", undefined, "offline");
    assert.equal(await page.textContent("#toggle-online"), "Go online");
  }
  assert.equal(await status(a), "offline");

  // Concurrent typing into the same body: A at the start, B at the end.
  const bodyA = note.locator(".note-body");
  await bodyA.click();
  await a.keyboard.press("Control+Home");
  await a.keyboard.type("A: ");
  const bodyB = b.locator("li.note .note-body").first();
  await bodyB.click();
  await b.keyboard.press("Control+End");
  await b.keyboard.type(" (B)");
  for (const [page, name] of [
    [a, "A"],
    [b, "B"],
  ]) {
    await allSaved(page, false, `${name}'s offline typing to be saved on the device`);
    assert.ok((await savedStates(page)).every(([, srv]) => srv === "pending"), `${name} offline: nothing new is claimed on the server`);
  }
  assert.equal((await notesOf(a))[0].body, "A: milk, eggs");
  assert.equal((await notesOf(b))[0].body, "milk, eggs (B)");

  // Back online: both show the merged text, saved on device and server.
  for (const page of [a, b]) await page.click("#toggle-online");
  for (const [page, name] of [
    [a, "A"],
    [b, "B"],
  ]) {
    await waitIn(page, () => document.querySelector("li.note .note-body").value === "A: milk, eggs (B)", undefined, `${name} to show the merged text`);
    await waitIn(page, () => document.querySelector("#status").dataset.status === "online", undefined, `${name} online`);
    await allSaved(page, true, `${name}: every .saved to say saved on device and server`);
    assert.equal(await status(page), "online");
    assert.deepEqual(await notesOf(page), [{ title: "Shopping", body: "A: milk, eggs (B)" }]);
    assert.deepEqual(await page.isHidden("#banner"), true);
    assert.deepEqual(page.hfErrors, []);
  }
  await a.context().close();
  await b.context().close();
});

test("edits saved on the device while offline survive a reload", { timeout: 60_000 }, async () => {
  const page = await openDemo(browser, server.http, "?db=demo-reload");
  await page.click("#toggle-online");
  await waitIn(page, () => document.querySelector("#status").dataset.status === "offline", undefined, "offline");

  // Edits made offline: the server never sees them.
  await page.fill("#board-title", "Offline board");
  await addNote(page, "first", "typed offline");
  await addNote(page, "second", "also offline");
  const body = page.locator("li.note .note-body").first();
  await body.click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type("!!");
  await allSaved(page, false, "the offline edits to be saved on this device");
  const shown = { board: await page.inputValue("#board-title"), notes: await notesOf(page) };
  assert.deepEqual(shown, {
    board: "Offline board",
    notes: [
      { title: "first", body: "typed offline!!" },
      { title: "second", body: "also offline" },
    ],
  });
  assert.ok((await savedStates(page)).every(([, srv]) => srv === "pending"), "offline: not on the server");

  // Reload with the same ?db= and the board's #automerge: URL, and with
  // ?sync=none so that the page stays offline: all of it must come back
  // from this device's IndexedDB.
  const url = new URL(page.url());
  assert.equal(url.searchParams.get("db"), "demo-reload");
  assert.match(url.hash, /^#automerge:/);
  url.searchParams.set("sync", "none");
  await gotoDemo(page, url.href);
  await waitIn(page, () => document.querySelectorAll("li.note .saved[data-device]").length === 2, undefined, "both notes to load");
  assert.equal(await status(page), "offline");
  assert.deepEqual({ board: await page.inputValue("#board-title"), notes: await notesOf(page) }, shown);
  assert.ok((await savedStates(page)).every(([dev]) => dev === "saved"));
  assert.deepEqual(page.hfErrors, []);
  await page.context().close();
});

test("screenshot: the app with two notes (tests/artifacts/demo.png)", { timeout: 60_000 }, async () => {
  const page = await openDemo(browser, server.http, "?db=demo-shot");
  await page.fill("#board-title", "Weekend trip");
  await addNote(page, "Packing", "tent, stove, headlamps");
  await addNote(page, "Route", "Day 1: trailhead to the lake\nDay 2: over the pass");
  await page.evaluate(() => document.activeElement?.blur()); // no caret or focus ring
  await allSaved(page, true, "both notes to be saved on device and server");
  const dir = join(ROOT, "tests", "artifacts");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "demo.png");
  await page.screenshot({ path, fullPage: true });
  console.log(`demo: screenshot saved to ${path}`);
  assert.deepEqual(page.hfErrors, []);
  await page.context().close();
});
