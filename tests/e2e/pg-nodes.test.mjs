// Several holdfast-server nodes on one PostgreSQL (issue 16), with real
// clients of both kinds: 3 nodes (`--postgres <url> --shared-database
// --shards 2`: each node splits its documents between 2 core repos) on a
// PostgreSQL started here, 30 clients: 6 holdfast clients in Chromium (each
// its own browser context and IndexedDB, dialing all 3 nodes) and 24
// automerge-repo 2.5.6 clients in node (each on one node). Everyone writes
// to one shared document and to a document of its own while a node is
// SIGKILLed and restarted on the same address every 0.5–1.5 s (seeded),
// HOLDFAST_NODE_KILLS times (default 10). Then: every client converges, and
// every change a node acknowledged to a holdfast client (`whenSynced`),
// and every change an automerge-repo client made, is in the database (a
// fresh client on a fresh browser context finds it) and in every client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, startPostgres, freePort, launchBrowser, openPage, call, waitIn, automergeClient, plain, within, prng, docCondition } from "./harness.mjs";

const KILLS = Number(process.env.HOLDFAST_NODE_KILLS ?? 10);
const SEED = Number(process.env.HOLDFAST_NODE_SEED ?? Math.floor(Math.random() * 2 ** 32));
const HOLDFAST_CLIENTS = 6;
const AM_CLIENTS = Number(process.env.HOLDFAST_NODE_AM_CLIENTS ?? 24);

let pg, browser;
const ports = [];
const nodes = [];

function startNode(i) {
  return startServer({ args: ["--postgres", pg.url, "--shared-database", "--recheck-seconds", "5", "--shards", "2"], listen: `127.0.0.1:${ports[i]}` });
}

before(async () => {
  pg = await startPostgres();
  browser = await launchBrowser();
  for (let i = 0; i < 3; i++) ports.push(await freePort());
  for (let i = 0; i < 3; i++) nodes.push(await startNode(i));
});
after(async () => {
  await browser?.close();
  for (const n of nodes) await n?.kill().catch(() => {});
  pg?.stop();
});

test(`3 nodes on one PostgreSQL, 30 clients, ${KILLS} node kills: every client converges and nothing acknowledged is lost`, { timeout: 300_000 }, async () => {
  const random = prng(SEED);
  console.log(`pg-nodes: seed ${SEED} (replay with HOLDFAST_NODE_SEED=${SEED}), ${KILLS} kills`);
  const urls = ports.map((p) => `ws://127.0.0.1:${p}`);
  // holdfast clients: acknowledged keys are reported to node.
  const acked = new Map(); // url -> Set of keys a node acknowledged
  const note = (url, key) => {
    if (!acked.has(url)) acked.set(url, new Set());
    acked.get(url).add(key);
  };
  const pages = [];
  for (let i = 0; i < HOLDFAST_CLIENTS; i++) {
    const page = await openPage(browser, nodes[0].http);
    await page.exposeFunction("acked", note);
    await call(page, ([db, urls]) => hf.open(db, urls), [`pg-nodes-${i}`, urls], `holdfast client ${i} to open`);
    pages.push(page);
  }
  const shared = await call(
    pages[0],
    async () => {
      const url = await hf.create({ shared: true });
      await hf.whenSynced(url);
      return url;
    },
    undefined,
    "the shared document on the server",
  );
  for (const [i, page] of pages.entries()) {
    if (i > 0) await call(page, (url) => hf.find(url), shared, `holdfast client ${i} to find the shared document`);
  }
  // automerge-repo clients, each on one node.
  const made = new Map(); // url -> Set of keys an automerge-repo client made
  const ams = [];
  for (let j = 0; j < AM_CLIENTS; j++) {
    const repo = automergeClient(urls[j % 3]);
    const sharedHandle = await within(repo.find(shared), `automerge-repo client ${j} to find the shared document`);
    const own = repo.create({ own: j });
    ams.push({ repo, sharedHandle, own });
  }

  // The holdfast clients' own documents, before the writing starts (a
  // debug-build page busy with 24 writers' changes from 3 nodes took over
  // 20 s to commit one).
  const ownUrls = [];
  for (const [i, page] of pages.entries()) {
    ownUrls.push(await call(page, (i) => hf.create({ own: i }), i, `holdfast client ${i} to create its document`).catch((e) => { throw new Error(`${e.message}; page errors: ${page.hfErrors?.join(" | ")}`); }));
  }
  // Everyone writes until told to stop.
  let writing = true;
  const amWriters = ams.map(async ({ sharedHandle, own }, j) => {
    for (let n = 0; writing; n++) {
      const key = `a${j}_${n}`;
      for (const h of [sharedHandle, own]) {
        h.change((d) => {
          d[key] = n;
        });
        if (!made.has(h.url)) made.set(h.url, new Set());
        made.get(h.url).add(key);
      }
      // The writer's pace: 24 of them share this process (and 2 cores
      // with Chromium, 3 servers and PostgreSQL).
      await new Promise((r) => setTimeout(r, 500 + random() * 1000));
    }
  });
  const hfWriters = pages.map((page, i) =>
    page.evaluate(
      async ([i, shared, own]) => {
        window.stopWriting = false;
        for (let n = 0; !window.stopWriting; n++) {
          const key = `h${i}_${n}`;
          await Promise.all(
            [shared, own].map(async (url) => {
              await hf.change(url, (d) => (d[key] = n));
              await hf.whenSynced(url);
              await window.acked(url, key);
            }),
          );
        }
      },
      [i, shared, ownUrls[i]],
    ),
  );

  // Kill a node every 0.5–1.5 s, restarting it on the same address.
  for (let k = 0; k < KILLS; k++) {
    await new Promise((r) => setTimeout(r, 500 + random() * 1000)); // the seeded moment of the next kill
    const i = Math.floor(random() * 3);
    await nodes[i].kill();
    nodes[i] = await startNode(i);
  }
  writing = false;
  await Promise.all(pages.map((p, i) => call(p, () => (window.stopWriting = true), undefined, `holdfast client ${i} to stop writing`)));
  await within(Promise.all(hfWriters), "the holdfast clients' last changes to be acknowledged", 90_000);
  await Promise.all(amWriters);

  // Everything, everywhere: acknowledged (holdfast) and made (automerge-repo).
  const want = new Map();
  for (const m of [acked, made]) for (const [url, keys] of m) want.set(url, new Set([...(want.get(url) ?? []), ...keys]));
  const sharedKeys = [...want.get(shared)];
  const t0 = Date.now();
  // Bounds: a holdfast client whose dials kept hitting a restarting node
  // backs off up to 30 s per server (DialerConfig::backoff_max_ms), and
  // automerge-repo's adapter retries every 5 s. Seen: 5 s locally, 38 s
  // and 61 s in clean-clone runs; the backoff explains at most about 30 s
  // of that (open in issue 16), so the bound is wide.
  const CONVERGE_MS = 150_000;
  // All at once, each client's time noted: which kind (and which node) is
  // slow is the question left open.
  const hfTimes = pages.map(async (page, i) => {
    await waitIn(page, ([url, keys]) => { const d = hf.doc(url); return keys.every((k) => d[k] !== undefined); }, [shared, sharedKeys], `holdfast client ${i} to converge`, CONVERGE_MS);
    return Date.now() - t0;
  });
  const amTimes = ams.map(async ({ sharedHandle }, j) => {
    await docCondition(sharedHandle, (d) => sharedKeys.every((k) => d[k] !== undefined), `automerge-repo client ${j} to converge`, CONVERGE_MS).catch((e) => {
      const d = plain(sharedHandle.doc()) ?? {};
      const missing = sharedKeys.filter((k) => d[k] === undefined);
      throw new Error(`${e.message}: missing ${missing.length} of ${sharedKeys.length}, e.g. ${missing.slice(0, 8)}`);
    });
    return Date.now() - t0;
  });
  // Slow convergence (50–60 s in some full runs, 5 s alone): what is
  // missing where, 10 s in (a diagnostic; the bounds above decide).
  const diagnose = setTimeout(async () => {
    const missingIn = (d) => sharedKeys.filter((k) => d?.[k] === undefined);
    const hf0 = await call(pages[0], ([url, keys]) => { const d = hf.doc(url); return keys.filter((k) => d[k] === undefined); }, [shared, sharedKeys], "diagnosis").catch((e) => [`(${e.message})`]);
    const am = ams.map(({ repo, sharedHandle }, j) => {
      const a = repo.adapter;
      return `#${j} node ${j % 3} socket ${a?.socket?.readyState} peer ${a?.remotePeerId ?? "-"} missing ${missingIn(plain(sharedHandle.doc())).length}`;
    });
    const metrics = await Promise.all(
      nodes.map((n, i) =>
        fetch(`${n.http}/metrics`)
          .then((r) => r.text())
          .then((t) => `node ${i}: ` + t.split("\n").filter((l) => /^holdfast_(connections|frames_waiting_for_storage|commit_seconds_count|documents_loaded|storage_reads_total) /.test(l)).join(", "))
          .catch((e) => `node ${i}: ${e.message}`),
      ),
    );
    let activity;
    try {
      activity = pg.psql(
        "select pid, application_name, state, wait_event, extract(epoch from now() - xact_start)::int as xact_s, left(query, 40) as query " +
          "from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid() and state <> 'idle'",
      );
    } catch (e) {
      activity = e.message;
    }
    console.log(`pg-nodes: 10 s after the writing stopped: ${metrics.join("; ")}; node pids ${nodes.map((n) => n.pid).join(", ")}\nPostgreSQL:\n${activity}`);
    console.log(`pg-nodes: 10 s after the writing stopped: holdfast client 0 misses [${hf0.slice(0, 12)}]${hf0.length > 12 ? ` (${hf0.length})` : ""}; automerge-repo clients: ${am.join("; ")}`);
  }, 10_000);
  const [hfAt, amAt] = await Promise.all([Promise.all(hfTimes), Promise.all(amTimes)]).finally(() => clearTimeout(diagnose));
  const byNode = [0, 1, 2].map((n) => amAt.filter((_, j) => j % 3 === n));
  console.log(
    `pg-nodes: converged (ms after the writing stopped): holdfast clients [${hfAt.join(", ")}]; ` +
      byNode.map((t, n) => `automerge-repo clients on node ${n} [${t.join(", ")}]`).join("; "),
  );
  const convergedMs = Date.now() - t0;
  // What the database holds: a fresh client finds every document whole.
  const fresh = await openPage(browser, nodes[1].http);
  await call(fresh, ([urls]) => hf.open("pg-nodes-fresh", urls), [urls], "the fresh client to open");
  let found = 0;
  for (const [url, keys] of want) {
    await call(fresh, (url) => hf.find(url), url, `the fresh client to find ${url}`);
    const missing = await call(fresh, ([url, keys]) => { const d = hf.doc(url); return keys.filter((k) => d[k] === undefined); }, [url, [...keys]], `the fresh client to check ${url}`);
    assert.deepEqual(missing, [], `${missing.length} of ${keys.size} changes missing from ${url}`);
    found += keys.size;
  }
  const total = (m) => [...m.values()].reduce((s, k) => s + k.size, 0);
  console.log(
    `pg-nodes summary: seed ${SEED}, ${KILLS} kills, ${total(acked)} changes acknowledged to holdfast clients, ${total(made)} made by automerge-repo clients, ${found} found in the database by a fresh client, lost 0; all 30 clients converged ${convergedMs} ms after the writing stopped`,
  );
  for (const { repo } of ams) await repo.shutdown?.();
});
