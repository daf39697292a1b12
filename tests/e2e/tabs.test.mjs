// Several tabs of one profile on one IndexedDB database, no sync server
// (issue 15), in Chromium: a change made durable in one tab reaches the
// others (a BroadcastChannel hint, then the records read from IndexedDB)
// and is reported there as a `change` from source "tab"; the time from
// durable in one tab to that event in another is measured and printed;
// concurrent edits of one text in three tabs converge; a tab opened later
// reads everything.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, openPageIn, call, waitIn } from "./harness.mjs";

let server, browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** `n` pages of ONE browser context (one profile: one IndexedDB), each
 * with a repo open on database `db`. */
async function tabs(n, db) {
  const context = await browser.newContext();
  const pages = [];
  for (let i = 0; i < n; i++) {
    const page = await openPageIn(await context.newPage(), server.http);
    await call(page, (db) => hf.open(db), db, `tab ${i} to open its repo`);
    pages.push(page);
  }
  return { context, pages };
}

/** Record, in the page, when each `change` event of `url` arrived (an
 * absolute time: performance.timeOrigin + performance.now()) and `n`. */
function recordArrivals(page, url) {
  return call(
    page,
    (url) => {
      window.arrivals = [];
      hf.repo.on("change", (e) => {
        if (e.url !== url) return;
        const n = hf.doc(url).n;
        window.arrivals.push({ t: performance.timeOrigin + performance.now(), n, source: e.source });
      });
    },
    url,
  );
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

test("a change made durable in one tab reaches another, reported from source 'tab'", async () => {
  const { context, pages } = await tabs(2, "tabs-live");
  const [a, b] = pages;
  const url = await call(a, () => hf.create({ n: 0 }), undefined, "A to create");
  await call(b, (url) => hf.find(url), url, "B to find A's document in IndexedDB");
  await recordArrivals(b, url);
  const rounds = 30;
  const durableAt = [];
  for (let i = 1; i <= rounds; i++) {
    durableAt.push(
      await call(
        a,
        async ([url, i]) => {
          await hf.change(url, (d) => (d.n = i));
          return performance.timeOrigin + performance.now();
        },
        [url, i],
        `A's change ${i}`,
      ),
    );
    // One change at a time: each is measured alone.
    await waitIn(b, ([i]) => window.arrivals.some((x) => x.n >= i), [i], `B to see n = ${i}`);
  }
  const arrivals = await call(b, () => window.arrivals);
  assert.ok(arrivals.every((x) => x.source === "tab"), JSON.stringify(arrivals.slice(0, 3)));
  const latencies = durableAt
    .map((t, i) => arrivals.find((x) => x.n >= i + 1).t - t)
    .sort((x, y) => x - y);
  console.log(
    `cross-tab: durable in A -> change in B over ${rounds} changes: ` +
      `p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, ` +
      `max ${latencies[latencies.length - 1].toFixed(1)} ms`,
  );
  // B's own change goes back to A the same way.
  await recordArrivals(a, url);
  await call(b, (url) => hf.change(url, (d) => (d.fromB = true)), url, "B's change");
  await waitIn(a, (url) => hf.doc(url).fromB === true, url, "A to see B's change");
  await context.close();
});

test("concurrent edits of one text in three tabs converge; a tab opened later reads them all", async () => {
  const { context, pages } = await tabs(3, "tabs-text");
  const [a] = pages;
  const url = await call(a, () => hf.create({ text: { $text: "" } }), undefined, "A to create");
  for (const p of pages.slice(1)) await call(p, (url) => hf.find(url), url, "a tab to find the document");
  const words = ["alpha", "beta", "gamma"];
  // All three type at once, each several edits, none waiting for the others.
  await Promise.all(
    pages.map((p, i) =>
      call(
        p,
        async ([url, word]) => {
          for (const ch of word) await hf.change(url, (d) => d.text.insertAt(d.text.length, ch));
        },
        [url, words[i]],
        `tab ${i} to type`,
      ),
    ),
  );
  const letters = words.join("").length;
  for (const [i, p] of pages.entries()) {
    await waitIn(p, ([url, n]) => String(hf.doc(url).text).length === n, [url, letters], `tab ${i} to hold every letter`);
  }
  const texts = await Promise.all(pages.map((p) => call(p, (url) => String(hf.doc(url).text), url)));
  assert.equal(new Set(texts).size, 1, `the tabs differ: ${JSON.stringify(texts)}`);
  const heads = await Promise.all(pages.map((p) => call(p, (url) => [...hf.heads(url)].sort(), url)));
  assert.deepEqual(heads[1], heads[0]);
  assert.deepEqual(heads[2], heads[0]);
  // A tab opened later: everything is in IndexedDB.
  const late = await openPageIn(await context.newPage(), server.http);
  await call(late, (db) => hf.open(db), "tabs-text", "the late tab to open");
  await call(late, (url) => hf.find(url), url, "the late tab to find the document");
  assert.equal(await call(late, (url) => String(hf.doc(url).text), url), texts[0]);
  await context.close();
});
