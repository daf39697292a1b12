// A storage failure as a user of the demo app sees it. The test deletes the
// app's IndexedDB database from inside the page (another connection's
// deleteDatabase: holdfast's connection gets `versionchange` and closes, so
// every later write fails), then types into a note. The app must say so
// (the #banner with the error's name), the note's indicator must say
// "failed" and never "saved", and the note must show the last durable text
// (the package reverts the working document; the app re-renders it).
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

test("IndexedDB deleted under the app: error shown, nothing claims saved, the text reverts", { timeout: 60_000 }, async () => {
  const db = "demo-fail";
  const page = await openDemo(browser, server.http, `?db=${db}`);
  await page.click("#add-note");
  const note = page.locator("li.note").first();
  await note.locator(".note-body").pressSequentially("hello");
  await waitIn(page, () => document.querySelector("li.note .saved").dataset.device === "saved", undefined, "the note to be saved on this device");
  const noteUrl = await note.getAttribute("data-url");

  // Another connection deletes the app's database.
  const deleted = await call(
    page,
    (db) =>
      new Promise((resolve, reject) => {
        const req = indexedDB.deleteDatabase(db);
        req.onsuccess = () => resolve("deleted");
        req.onerror = () => reject(req.error);
        req.onblocked = () => {}; // holdfast closes its connection on versionchange; success follows
      }),
    db,
    "the app's database to be deleted",
  );
  assert.equal(deleted, "deleted");

  // The user types on. From the first keystroke on, record every state the
  // note's indicator shows.
  await page.evaluate(() => {
    const el = document.querySelector("li.note .saved");
    window.deviceStates = [];
    document.querySelector("li.note .note-body").addEventListener("keydown", () => (window.typing = true), { once: true });
    new MutationObserver(() => window.typing && window.deviceStates.push(el.dataset.device)).observe(el, {
      attributes: true,
      attributeFilter: ["data-device"],
    });
  });
  const body = note.locator(".note-body");
  await body.click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(" world");

  await waitIn(page, () => !document.querySelector("#banner").hidden, undefined, "the error banner");
  const banner = await page.textContent("#banner");
  assert.match(banner, /StorageUnavailableError/, `the banner names the error: ${banner}`);
  await waitIn(page, () => document.querySelector("li.note .saved").dataset.device === "failed", undefined, "the note's indicator to say failed");
  // Let every keystroke's change settle (none is pending), then look again.
  await waitIn(
    page,
    (url) => {
      const h = [...window.holdfastDemo.handles.values()].find((h) => h.url === url);
      return document.querySelector("li.note .saved").dataset.device === "failed" && h.doc().body === "hello";
    },
    noteUrl,
    "the document to be back at its last durable state",
  );
  assert.equal(await body.inputValue(), "hello", "the textarea shows the last durable text, not the unsaved typing");
  assert.match(await page.textContent("li.note .saved"), /not saved/);
  const states = await page.evaluate(() => window.deviceStates);
  assert.ok(states.length > 0, "the indicator changed");
  assert.ok(!states.includes("saved"), `the indicator never claimed saved: ${states.join(" → ")}`);
  assert.equal(states.at(-1), "failed");

  // Adding a note cannot be saved either: the board keeps its one note, the
  // banner stays, and the app does not throw (no uncaught rejection).
  await page.evaluate(() => {
    window.storageErrors = 0;
    window.holdfastDemo.repo.on("storage-error", () => window.storageErrors++);
  });
  await page.click("#add-note");
  await waitIn(page, () => window.storageErrors > 0, undefined, "the add to fail with a storage error");
  // A macrotask later any unhandled rejection has been reported (CDP
  // delivers it before this call's answer).
  await page.evaluate(() => new Promise((r) => setTimeout(r, 0)));
  assert.equal(await page.isVisible("#banner"), true);
  assert.equal(await page.locator("li.note").count(), 1);
  assert.deepEqual(page.hfErrors, [], "no uncaught errors in the app");
  await page.context().close();
});
