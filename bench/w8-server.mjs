// W8 (server): memory a sync server holds per document. For each system and
// each N of BENCH_W8_SERVER_DOCS (default 1000; at 10,000 the automerge-repo
// client alone takes minutes to create and push them): a fresh server; an automerge-repo 2.5.6 client
// (node, its WebSocket adapter; the same client for both servers) creates N
// small documents (W4's); a second client then finds every one through the
// server (a find the server cannot answer yet is retried), so the server
// holds all N (holdfast-server answers only from its disk); both clients
// disconnect, and the server's resident memory (VmRSS) is taken again. Per
// document = (after − before) / N, before = just after the server started.
//
// Exports runW8Server({ docs, holdfastServerBin, log }) →
// { [n]: { holdfast: { rssPerDoc, rssBefore, rssAfter }, automerge: {..} } }.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

import { startAmServer, startHoldfastServer, W7_SERVER_ARGS } from "./w7.mjs";

export const W8_SERVER_DOCS = (process.env.BENCH_W8_SERVER_DOCS ?? "1000").split(",").map(Number);

function rssBytes(pid) {
  const kb = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (!kb) throw new Error(`W8 server: no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

function client(url) {
  return new Repo({ network: [new WebSocketClientAdapter(url)], sharePolicy: async () => true });
}

async function closeClient(repo) {
  await repo.shutdown();
}

/** Find `id` through the server, retrying while it is unavailable there. */
async function findThrough(repo, id, deadline) {
  for (;;) {
    try {
      const h = await repo.find(id);
      return h.doc();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`W8 server: ${id} not available from the server: ${e.message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function runOne({ system, n, holdfastServerBin }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `holdfast-w8-${system}-`));
  const server =
    system === "holdfast"
      ? await startHoldfastServer({ bin: holdfastServerBin, dir, args: W7_SERVER_ARGS })
      : await startAmServer({ dir });
  try {
    const rssBefore = rssBytes(server.pid);
    const writer = client(server.url);
    const ids = [];
    for (let i = 0; i < n; i++) ids.push(writer.create({ title: `doc ${i}`, n: i }).documentId);
    const reader = client(server.url);
    const deadline = Date.now() + 600_000;
    let sum = 0;
    const batch = 500;
    for (let i = 0; i < ids.length; i += batch) {
      const docs = await Promise.all(ids.slice(i, i + batch).map((id) => findThrough(reader, id, deadline)));
      for (const d of docs) sum += d.n;
    }
    if (sum !== (n * (n - 1)) / 2) throw new Error(`W8 server ${system}: read ${sum} from ${n} documents`);
    await closeClient(writer);
    await closeClient(reader);
    const rssAfter = rssBytes(server.pid);
    return { rssBefore, rssAfter, rssPerDoc: (rssAfter - rssBefore) / n };
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function runW8Server({ docs, holdfastServerBin, log }) {
  const out = {};
  for (const n of docs) {
    out[n] = {};
    for (const system of ["holdfast", "automerge"]) {
      const r = await runOne({ system, n, holdfastServerBin });
      out[n][system] = r;
      log(`W8 server ${system} N=${n}: ${Math.round(r.rssPerDoc)} B/doc resident (${Math.round(r.rssBefore / 1048576)} → ${Math.round(r.rssAfter / 1048576)} MiB)`);
    }
  }
  return out;
}
