// W9 — hostile load (issue 14): do the server's limits keep its normal
// clients served and its memory and disk bounded under abuse?
//
// Each repetition is two runs of holdfast-load (bench/load), each on a FRESH
// server and data directory:
//   unloaded: `clients` (10) writers, each making one small change to its own
//     document every `intervalMs` (20 ms: 500 changes/s in all) for
//     `seconds`, open loop (a change is made on schedule whether or not the
//     earlier ones are acknowledged; acknowledged = the server advertises
//     heads that include it, as in W7);
//   loaded: the same writers, plus `idle` (1,000) connections that complete
//     the WebSocket upgrade and `join`, then stay idle for the whole run
//     (reading what the server sends; a joined connection is past the
//     header and handshake timeouts), opened from 127.0.0.2..127.0.0.9 in
//     turn (125 each, under the default 256 connections per IP: the server
//     runs with its default limits, no flag), plus one spammer that, from
//     the start, sends `request`s (an empty document's first sync message)
//     for `spamDocs` (100,000) new random document ids as fast as the
//     server takes them, reconnecting each time the server closes it at
//     `--max-docs-per-connection` (10,000), until the server has answered
//     all of them. The run lasts `seconds`, longer if the spam is not done
//     by then (at most `maxSeconds`, by default `seconds`).
// Both runs last `seconds` (60) by default: the writers' documents grow
// with every change and automerge's cost per change with them, so only runs
// of the same length compare (the writers alone, after 100 s of this, keep
// one core busy). The writers' latency under attack is taken over the
// changes made while the spam ran (`during_spam`), the target: its p99 ≤ 2 ×
// the unloaded run's p99.
// Server peak RSS is VmHWM (and VmRSS sampled every 250 ms); its cap
// `rssCapMb` (512 MiB). The data directory is measured after the server
// stopped; its cap: the unloaded run's + `diskSlackMb` (64 MiB: requests for
// unknown ids should write nothing). holdfast-server's /metrics is read every
// second (peak documents loaded, sockets) and at the end (refusals by reason,
// documents loaded).
//
// Exports:
//   runW9({ seconds, reps, clients, intervalMs, idle, spamDocs, maxSeconds,
//           systems, holdfastServerBin, loadBin, log })
//     → { config, holdfast: [ { unloaded, loaded, p99_ratio, ... } per rep ],
//         automerge: [...] (only if asked) }
//
// Standalone: node bench/w9.mjs [--seconds 60] [--reps 1]
//   [--systems holdfast[,automerge]] [--idle 1000] [--spam-docs 100000]
//   [--max-seconds SECONDS] [--server-bin PATH] — prints the raw results as JSON
//   (the BENCH_W9_* variables and $HOLDFAST_SERVER_BIN set the same).
// Binaries default to $CARGO_TARGET_DIR (or target/)/release/.

import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { dirBytes, peakRssKb, runLoad, startAmServer, startHoldfastServer } from "./w7.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "..")

export const W9_RSS_CAP_MB = 512
export const W9_DISK_SLACK_MB = 64
const IDLE_SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`)

function defaultBin(name) {
  const target = process.env.CARGO_TARGET_DIR || path.join(root, "target")
  return path.join(target, "release", name)
}

/** VmRSS (kB) and thread count of `pid` (nulls if unreadable). */
function procStatus(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const num = (re) => Number(s.match(re)?.[1] ?? NaN)
    return { rssKb: num(/^VmRSS:\s+(\d+)\s+kB/m), threads: num(/^Threads:\s+(\d+)/m) }
  } catch {
    return { rssKb: null, threads: null }
  }
}
const rssKb = (pid) => procStatus(pid).rssKb

/** Prometheus text → { "name{labels}": value }. */
function parseMetrics(text) {
  const out = {}
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue
    const i = line.lastIndexOf(" ")
    out[line.slice(0, i)] = Number(line.slice(i + 1))
  }
  return out
}

/** "a / b / c": inputs over 5, 10 and 25 ms, from cumulative buckets. */
function slowInputs(b) {
  const all = b?.["+Inf"]
  if (all == null) return "n/a"
  return ["0.005", "0.01", "0.025"].map((le) => all - (b[le] ?? 0)).join(" / ")
}

async function metrics(base, timeoutMs = 5000) {
  const r = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(timeoutMs) })
  if (!r.ok) throw new Error(`/metrics: ${r.status}`)
  return parseMetrics(await r.text())
}


/** One run on a fresh server and data directory. */
async function runOne({ system, attack, cfg, holdfastServerBin, loadBin, log }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `holdfast-w9-${system}-`))
  let server
  let sampler
  try {
    server = system === "holdfast" ? await startHoldfastServer({ bin: holdfastServerBin, dir }) : await startAmServer({ dir })
    const base = server.url.replace(/^ws:/, "http:").replace(/\/$/, "")
    const peaks = { rss_kb: 0, threads: 0, documents_loaded: 0, sockets: 0, connections: 0 }
    let polling = false
    const sample = async () => {
      peaks.rss_kb = Math.max(peaks.rss_kb, rssKb(server.pid) ?? 0)
      if (system !== "holdfast" || polling) return
      polling = true
      try {
        const m = await metrics(base)
        peaks.documents_loaded = Math.max(peaks.documents_loaded, m.holdfast_documents_loaded ?? 0)
        peaks.sockets = Math.max(peaks.sockets, m.holdfast_sockets ?? 0)
        peaks.connections = Math.max(peaks.connections, m.holdfast_connections ?? 0)
      } catch {
        // A busy server answers late: the next tick tries again.
      } finally {
        polling = false
      }
    }
    let tick = 0
    sampler = setInterval(() => {
      tick++
      const st = procStatus(server.pid)
      peaks.rss_kb = Math.max(peaks.rss_kb, st.rssKb ?? 0)
      peaks.threads = Math.max(peaks.threads, st.threads ?? 0)
      if (tick % 4 === 0) sample()
    }, 250)
    const args = [
      "--url", server.url,
      "--clients", String(cfg.clients),
      "--seconds", String(cfg.seconds),
      "--interval-ms", String(cfg.intervalMs),
      "--window", "2",
    ]
    if (attack) {
      args.push(
        "--idle", String(cfg.idle),
        "--idle-sources", IDLE_SOURCES.join(","),
        "--spam-docs", String(cfg.spamDocs),
        "--max-seconds", String(cfg.maxSeconds),
      )
    }
    const { result, stderr } = await runLoad(loadBin, args)
    clearInterval(sampler)
    sampler = null
    await sample()
    if (system === "holdfast") {
      // A server still busy with the attack's backlog answers late.
      const t = performance.now()
      const m = await metrics(base, 60_000).catch((e) => ({ error: e.message }))
      result.metrics_end_ms = performance.now() - t
      if (m.error) result.metrics_end = { error: m.error }
      else result.metrics_end = {
        documents_loaded: m.holdfast_documents_loaded,
        documents_evicted: m.holdfast_documents_evicted_total,
        commits: m.holdfast_commit_seconds_count,
        commit_mean_ms: (1000 * m.holdfast_commit_seconds_sum) / m.holdfast_commit_seconds_count,
        // Cumulative counts of commits by duration (le = seconds).
        commit_buckets: Object.fromEntries(
          Object.entries(m)
            .filter(([k]) => k.startsWith("holdfast_commit_seconds_bucket"))
            .map(([k, v]) => [k.match(/le="([^"]*)"/)?.[1] ?? k, v]),
        ),
        // Cumulative counts of the core task's inputs by how long each
        // held it (le = seconds): what every other connection waited.
        core_input_buckets: Object.fromEntries(
          Object.entries(m)
            .filter(([k]) => k.startsWith("holdfast_core_input_seconds_bucket"))
            .map(([k, v]) => [k.match(/le="([^"]*)"/)?.[1] ?? k, v]),
        ),
        connections: m.holdfast_connections,
        sockets: m.holdfast_sockets,
        refusals: Object.fromEntries(
          Object.entries(m)
            .filter(([k]) => k.startsWith("holdfast_refusals_total"))
            .map(([k, v]) => [k.match(/reason="([^"]*)"/)?.[1] ?? k, v]),
        ),
        messages_received: Object.fromEntries(
          Object.entries(m)
            .filter(([k]) => k.startsWith("holdfast_messages_received_total"))
            .map(([k, v]) => [k.match(/type="([^"]*)"/)?.[1] ?? k, v]),
        ),
        bytes_received: m.holdfast_bytes_received_total,
        bytes_sent: m.holdfast_bytes_sent_total,
      }
    }
    result.server_peak_rss_kb = Math.max(server.peakRssKb() ?? 0, peaks.rss_kb)
    result.server_rss_end_kb = rssKb(server.pid)
    result.peaks = peaks
    const exit = await server.stop()
    server = null
    result.server_exit = exit.code ?? exit.signal
    result.data_bytes = dirBytes(dir)
    const d = result.during_spam
    log(
      `W9 ${system} ${attack ? "loaded" : "unloaded"}: ${result.acks} acks in ${result.run_s} s, ` +
        `p50 ${result.p50_ms} p99 ${result.p99_ms} max ${result.max_ms} ms` +
        (d ? ` (during the spam: ${d.acks} acks, p50 ${d.p50_ms} p99 ${d.p99_ms} max ${d.max_ms} ms)` : "") +
        `, slowest [s, ms] ${JSON.stringify(result.slowest)}, unacked at the end ${result.unacked_at_end}` +
        `, errors ${result.errors}, server peak RSS ${result.server_peak_rss_kb} kB, peak threads ${peaks.threads}, data ${result.data_bytes} B` +
        (result.spam ? `; spam ${result.spam.answered}/${result.spam.target} answered (${result.spam.sent} sent) in ${result.spam.seconds} s = ${result.spam.rate_per_s}/s over ${result.spam.connections} connections` : "") +
        (result.idle ? `; idle ${result.idle.open_at_end}/${result.idle.requested} open at the end` : "") +
        (result.metrics_end ? `; docs loaded ${result.metrics_end.documents_loaded} (peak ${peaks.documents_loaded}, evicted ${result.metrics_end.documents_evicted}), ${result.metrics_end.commits} commits of ${result.metrics_end.commit_mean_ms?.toFixed(1)} ms mean, refusals ${JSON.stringify(Object.fromEntries(Object.entries(result.metrics_end.refusals).filter(([, v]) => v)))}` +
          `, core inputs over 5 / 10 / 25 ms: ${slowInputs(result.metrics_end.core_input_buckets)}` : "") +
        (stderr.trim() ? ` [${stderr.trim().split("\n").join(" | ")}]` : ""),
    )
    return result
  } finally {
    if (sampler) clearInterval(sampler)
    if (server) await server.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export async function runW9({
  seconds = 60,
  reps = 1,
  clients = 10,
  intervalMs = 20,
  idle = 1000,
  spamDocs = 100_000,
  maxSeconds = seconds,
  systems = ["holdfast"],
  holdfastServerBin = defaultBin("holdfast-server"),
  loadBin = defaultBin("holdfast-load"),
  log = console.error,
} = {}) {
  const cfg = { seconds, clients, intervalMs, idle, spamDocs, maxSeconds, idleSources: IDLE_SOURCES, rssCapMb: W9_RSS_CAP_MB, diskSlackMb: W9_DISK_SLACK_MB }
  const results = { config: cfg }
  for (const s of systems) results[s] = []
  for (let rep = 0; rep < reps; rep++) {
    for (const system of systems) {
      const one = (attack) => runOne({ system, attack, cfg, holdfastServerBin, loadBin, log })
      const unloaded = await one(false)
      const loaded = await one(true)
      const loadedP99 = loaded.during_spam?.p99_ms ?? loaded.p99_ms
      const r = {
        unloaded,
        loaded,
        // The target: the writers' p99 while the spam ran over the unloaded p99.
        p99_ratio: loadedP99 / unloaded.p99_ms,
        p99_ratio_whole_run: loaded.p99_ms / unloaded.p99_ms,
        rss_cap_mb: W9_RSS_CAP_MB,
        rss_ok: loaded.server_peak_rss_kb / 1024 <= W9_RSS_CAP_MB,
        disk_cap_bytes: unloaded.data_bytes + W9_DISK_SLACK_MB * 1024 * 1024,
      }
      r.disk_ok = loaded.data_bytes <= r.disk_cap_bytes
      results[system].push(r)
      log(
        `W9 ${system} rep ${rep}: writers' p99 ${unloaded.p99_ms} → ${loadedP99} ms during the spam ` +
          `(${r.p99_ratio.toFixed(2)}×; whole run ${r.p99_ratio_whole_run.toFixed(2)}×), ` +
          `server peak RSS ${(loaded.server_peak_rss_kb / 1024).toFixed(1)} MiB (cap ${W9_RSS_CAP_MB}), ` +
          `data ${loaded.data_bytes} B (cap ${r.disk_cap_bytes})`,
      )
    }
  }
  return results
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`)
    return i < 0 ? dflt : process.argv[i + 1]
  }
  const results = await runW9({
    seconds: Number(arg("seconds", process.env.BENCH_W9_SECONDS ?? "60")),
    reps: Number(arg("reps", process.env.BENCH_W9_REPS ?? "1")),
    systems: arg("systems", process.env.BENCH_W9_SYSTEMS ?? "holdfast").split(","),
    idle: Number(arg("idle", process.env.BENCH_W9_IDLE ?? "1000")),
    spamDocs: Number(arg("spam-docs", process.env.BENCH_W9_SPAM_DOCS ?? "100000")),
    maxSeconds: Number(arg("max-seconds", process.env.BENCH_W9_MAX_SECONDS ?? arg("seconds", process.env.BENCH_W9_SECONDS ?? "60"))),
    holdfastServerBin: arg("server-bin", process.env.HOLDFAST_SERVER_BIN ?? defaultBin("holdfast-server")),
  })
  console.log(JSON.stringify(results, null, 2))
}
