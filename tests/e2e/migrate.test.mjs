// Coming from automerge-repo: documents that automerge-repo 2.5.6 wrote with
// its IndexedDBStorageAdapter (snapshots and incrementals in database
// "automerge"-style layout) open in holdfast, in Chromium, with
// `Repo.open({ indexedDB: <the same name> })`: every document is found with
// its content, nothing is reported as a storage reset, and holdfast's later
// changes are readable by automerge-repo again.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { ROOT, startServer, launchBrowser, within, waitIn, call } from "./harness.mjs";

const SITE = join(ROOT, "tests", "artifacts", "migrate");
const DB = "automerge-app";

let server, browser;
before(async () => {
  rmSync(SITE, { recursive: true, force: true });
  mkdirSync(SITE, { recursive: true });
  cpSync(join(ROOT, "tests", "e2e", "migrate", "index.html"), join(SITE, "index.html"));
  cpSync(join(ROOT, "tests", "e2e", "node_modules", "@automerge", "automerge", "dist", "automerge.wasm"), join(SITE, "automerge.wasm"));
  await build({
    entryPoints: [join(ROOT, "tests", "e2e", "migrate", "am-write.js")],
    outfile: join(SITE, "am.js"),
    bundle: true,
    format: "esm",
    target: "es2022",
    logLevel: "warning",
  });
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(SITE, { recursive: true, force: true });
});

test("holdfast opens the IndexedDB database automerge-repo's adapter wrote, finds every document, and automerge-repo reads holdfast's changes back", async () => {
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.http}/tests/artifacts/migrate/index.html`);
  await waitIn(page, () => window.amReady === true && window.HoldfastRepo !== undefined, undefined, "the page to load both libraries");

  // automerge-repo writes 4 documents: a first state and 6 changes each.
  const written = await call(page, ([db]) => window.am.write(db, 4, 6), [DB], "automerge-repo to write");
  const urls = Object.keys(written);
  assert.equal(urls.length, 4);
  const kinds = (keys) => keys.filter((k) => k.length === 3).reduce((n, k) => ({ ...n, [k[1]]: (n[k[1]] ?? 0) + 1 }), {});
  const before = kinds(await call(page, ([db]) => window.am.keys(db), [DB]));
  assert.ok(before.snapshot > 0 && before.incremental > 0, `automerge-repo wrote snapshots and incrementals: ${JSON.stringify(before)}`);
  console.log(`automerge-repo wrote ${JSON.stringify(before)} records for ${urls.length} documents`);

  // holdfast opens the same database: every document, nothing "reset".
  const seen = await within(
    page.evaluate(
      async ([db, urls]) => {
        const repo = await window.HoldfastRepo.open({ indexedDB: db });
        const docs = {};
        for (const url of urls) docs[url] = (await repo.find(url)).doc();
        const reset = repo.storageReset;
        // A change by holdfast, durable when it resolves.
        await (await repo.find(urls[0])).change((d) => {
          d.title = "edited in holdfast";
          d.items.push("from holdfast");
        });
        await repo.close();
        return { docs, reset };
      },
      [DB, urls],
    ),
    "holdfast to open automerge-repo's database",
  );
  assert.equal(seen.reset, null, "an existing automerge-repo database is not a reset");
  assert.deepEqual(seen.docs, written);

  // automerge-repo again, on the database holdfast wrote to.
  const again = await call(page, ([db, urls]) => window.am.read(db, urls), [DB, urls], "automerge-repo to read it back");
  assert.equal(again[urls[0]].title, "edited in holdfast");
  assert.deepEqual(again[urls[0]].items, [...written[urls[0]].items, "from holdfast"]);
  for (const url of urls.slice(1)) assert.deepEqual(again[url], written[url]);
  assert.deepEqual(errors, []);
});
