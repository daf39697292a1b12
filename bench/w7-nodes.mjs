// W7n — W7's closed-loop writers (`holdfast-load`, each client its own
// document) against holdfast-server set up in several ways (issue 16):
//
//   log                1 node on its log (W7's own setup)
//   log, 2 shards      1 node on its log, --shards 2 (documents split
//                      between 2 core repos, each on a thread: 1 → 2 cores)
//   pg                 1 node on PostgreSQL (--postgres)
//   pg, 2 shards       the same with --shards 2
//   pg, 2 nodes        2 nodes on one PostgreSQL (--shared-database)
//   pg, 3 nodes        3 nodes on one PostgreSQL
//
// The clients are split evenly between the nodes (one holdfast-load per
// node, run at once). Each run gets a fresh server, data directory and
// database (the tables dropped). Figures per run: acknowledged changes/s
// (all nodes), the first and the last 2 s window, p50 and p99 ack latency
// (the worst node's), the servers' summed peak RSS. One run per (setup, N),
// like W7. PostgreSQL: Debian's, started here (scripts/postgres.mjs).
//
// Exports runW7Nodes({ clients, seconds, setups, serverBin, loadBin, log })
//   → { [setup]: { [n]: { rate, first, last, p50_ms, p99_ms, rss_kb, errors } } }
// Standalone: node bench/w7-nodes.mjs [--clients 100,1000] [--seconds 10]
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { startHoldfastServer, runLoad, W7_SERVER_ARGS } from "./w7.mjs"
import { startPostgres } from "../scripts/postgres.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "..")

export const SETUPS = {
  log: { nodes: 1, args: [] },
  "log, 2 shards": { nodes: 1, args: ["--shards", "2"] },
  pg: { nodes: 1, pg: true, args: [] },
  "pg, 2 shards": { nodes: 1, pg: true, args: ["--shards", "2"] },
  "pg, 2 nodes": { nodes: 2, pg: true, args: ["--shared-database"] },
  "pg, 3 nodes": { nodes: 3, pg: true, args: ["--shared-database"] },
}

function defaultBin(name) {
  const target = process.env.CARGO_TARGET_DIR || path.join(root, "target")
  return path.join(target, "release", name)
}

/** Drop holdfast's tables: the next server starts on an empty database. */
function resetDatabase(pg) {
  const sql = "SET client_min_messages = warning; DROP TABLE IF EXISTS holdfast_records; DROP TABLE IF EXISTS holdfast_schema;"
  pg.psql(sql)
}

async function runSetup({ name, setup, n, seconds, pg, serverBin, loadBin, log }) {
  const dirs = []
  const servers = []
  try {
    if (setup.pg) resetDatabase(pg)
    for (let i = 0; i < setup.nodes; i++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "holdfast-w7n-"))
      dirs.push(dir)
      const storage = setup.pg ? ["--postgres", pg.url] : []
      servers.push(await startHoldfastServer({ bin: serverBin, dir: setup.pg ? null : dir, args: [...storage, ...setup.args, ...W7_SERVER_ARGS] }))
    }
    const per = Math.round(n / setup.nodes)
    const runs = await Promise.all(
      servers.map(s => runLoad(loadBin, ["--url", s.url, "--clients", String(per), "--seconds", String(seconds), "--window", "2"])),
    )
    const rss_kb = servers.reduce((sum, s) => sum + (s.peakRssKb() ?? 0), 0)
    const rs = runs.map(r => r.result)
    const acks = rs.reduce((s, r) => s + r.acks, 0)
    const window = (i) => rs.reduce((s, r) => s + (r.rate_windows.at(i) ?? 0), 0)
    const result = {
      rate: acks / rs[0].seconds,
      first: window(0),
      last: window(-1),
      p50_ms: Math.max(...rs.map(r => r.p50_ms)),
      p99_ms: Math.max(...rs.map(r => r.p99_ms)),
      rss_kb,
      errors: rs.reduce((s, r) => s + r.errors, 0),
    }
    if (result.errors) throw new Error(`W7n ${name} N=${n}: ${result.errors} clients failed: ${JSON.stringify(rs.map((r) => r.error_kinds))}`)
    log(
      `W7n ${name} N=${n}: ${result.rate.toFixed(0)} acked/s (first window ${result.first.toFixed(0)}, last ${result.last.toFixed(0)}), ` +
        `p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms (worst node), RSS ${(rss_kb / 1024).toFixed(0)} MiB (sum), errors ${result.errors}`,
    )
    return result
  } finally {
    for (const s of servers) await s.stop()
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  }
}

export async function runW7Nodes({
  clients = [100, 1000],
  seconds = 10,
  setups = Object.keys(SETUPS),
  serverBin = defaultBin("holdfast-server"),
  loadBin = defaultBin("holdfast-load"),
  log = console.error,
} = {}) {
  const needPg = setups.some(s => SETUPS[s].pg)
  const pg = needPg ? await startPostgres() : null
  try {
    const out = Object.fromEntries(setups.map(s => [s, {}]))
    for (const n of clients) {
      for (const name of setups) {
        out[name][n] = await runSetup({ name, setup: SETUPS[name], n, seconds, pg, serverBin, loadBin, log })
      }
    }
    return out
  } finally {
    pg?.stop()
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`)
    return i < 0 ? dflt : process.argv[i + 1]
  }
  const results = await runW7Nodes({
    clients: arg("clients", "100,1000").split(",").map(Number),
    seconds: Number(arg("seconds", "10")),
    setups: arg("setups", Object.keys(SETUPS).join(";")).split(";"),
  })
  console.log(JSON.stringify(results, null, 2))
}
