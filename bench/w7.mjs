// W7 — server load: N concurrent native WebSocket clients (bench/load,
// `holdfast-load`) each writing small changes to its own document in a closed
// loop for `seconds`, against `holdfast-server` (fsync on; a change counts
// once the server advertises heads that include it, which it only does for
// heads on its disk — what `whenSynced` waits for) and against automerge-repo
// 2.5.6's node sync server with NodeFSStorageAdapter (`am-server.mjs`; a
// change counts once that server reports heads that include it: its memory,
// saved to disk up to 100 ms later, without fsync).
//
// Repetitions: to keep `make bench` under 15 minutes, W7 runs ONCE per
// (system, N), not BENCH_REPS times. Its "median (min–max)" rate is over the
// rate of each 2-second window of that run (5 windows of a 10 s run:
// `rate_windows`, acknowledged changes/s); p50/p99 ack latency are over every
// acknowledgement of the run; server peak RSS is VmHWM of the server process
// read from /proc just before it is stopped. A fresh server and data
// directory for each run.
//
// Exports:
//   runW7({ clients, seconds, holdfastServerBin, loadBin, log, systems })
//     → { holdfast: { 10: result, 100: ..., 1000: ... }, automerge: {...} }
//     result = holdfast-load's JSON ({clients, seconds, window_s, acks,
//     rate_windows, p50_ms, p99_ms, max_ms, mean_ms, errors, error_kinds,
//     unacked_at_end, warmup_s}) + { server_peak_rss_kb, data_bytes,
//     server_exit } (data_bytes: the data directory's size after the run).
//   startAmServer({ dir, port }) → { url, pid, wait(docs, timeoutMs), stop(), peakRssKb() }
//   startHoldfastServer({ bin, dir, args }) → { url, pid, stop(), peakRssKb() }
//   peakRssKb(pid), dirBytes(dir), runLoad(loadBin, args) (W9 uses them too)
//
// Standalone: node bench/w7.mjs [--clients 10,100,1000] [--seconds 10]
//   [--systems holdfast,automerge] — prints the raw results as JSON.
// Binaries default to $CARGO_TARGET_DIR (or target/)/release/.

import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "..")

/** VmHWM (peak resident set) of `pid` in kB, or null if unreadable. */
export function peakRssKb(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmHWM:\s+(\d+)\s+kB/m)
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

/** The bytes of the files under `dir`. */
export function dirBytes(dir) {
  let total = 0
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) total += dirBytes(p)
    else if (e.isFile()) total += fs.statSync(p).size
  }
  return total
}

/**
 * Spawn a server and wait for its `listening on ws://...` line. Every later
 * stdout line goes to `onLine`. Returns { child, url, exited, stderr() }.
 */
function spawnServer(cmd, args, { env, onLine, what, timeoutMs = 30_000 }) {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } })
  let stderr = ""
  child.stderr.on("data", d => {
    stderr += d
    if (stderr.length > 64_000) stderr = stderr.slice(-32_000)
  })
  child.stdin.on("error", () => {}) // EPIPE if it died
  const exited = new Promise(resolve => child.on("exit", (code, signal) => resolve({ code, signal })))
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start in ${timeoutMs} ms:\n${stderr}`)), timeoutMs)
    child.on("error", e => {
      clearTimeout(timer)
      reject(new Error(`${what}: ${e.message}`))
    })
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited (${code ?? signal}) before listening:\n${stderr}`))
    })
    let listening = false
    createInterface({ input: child.stdout }).on("line", line => {
      const m = !listening && line.match(/listening on (ws:\/\/\S+)/)
      if (m) {
        listening = true
        clearTimeout(timer)
        resolve(m[1])
      } else if (listening) {
        onLine?.(line)
      }
    })
  })
  return { child, url, exited, stderr: () => stderr }
}

/** SIGINT, then wait for the exit (SIGKILL after `ms`). */
async function stopChild(child, exited, ms = 20_000) {
  if (child.exitCode !== null || child.signalCode !== null) return exited
  child.kill("SIGINT")
  let timer
  const killed = new Promise(resolve => {
    timer = setTimeout(() => {
      child.kill("SIGKILL")
      resolve()
    }, ms)
  })
  await Promise.race([exited, killed])
  clearTimeout(timer)
  return exited
}

/** automerge-repo's node sync server (am-server.mjs) on a fresh port. */
export async function startAmServer({ dir, port = 0 }) {
  const waiting = new Map()
  let nextId = 1
  const s = spawnServer(process.execPath, [path.join(here, "am-server.mjs"), "--dir", dir, "--port", String(port)], {
    what: "am-server.mjs",
    onLine: line => {
      let msg
      try {
        msg = JSON.parse(line)
      } catch {
        return
      }
      const w = waiting.get(msg.id)
      if (!w) return
      waiting.delete(msg.id)
      if (msg.ok) w.resolve()
      else w.reject(new Error(`am-server: ${msg.error}`))
    },
  })
  const url = await s.url
  s.exited.then(({ code, signal }) => {
    for (const w of waiting.values()) w.reject(new Error(`am-server exited (${code ?? signal}): ${s.stderr().slice(-4000)}`))
    waiting.clear()
  })
  return {
    url,
    pid: s.child.pid,
    /** Resolves once the server has every head of `docs` ({ documentId: [hex heads] }) flushed. */
    wait(docs, timeoutMs = 60_000) {
      const id = nextId++
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject })
        s.child.stdin.write(JSON.stringify({ id, op: "wait", docs, timeout_ms: timeoutMs }) + "\n")
      })
    },
    peakRssKb: () => peakRssKb(s.child.pid),
    stop: () => stopChild(s.child, s.exited),
    stderr: s.stderr,
  }
}

/** holdfast-server flags for W7: every client connects from 127.0.0.1, so
 * the per-IP connection cap (256 by default, W9's defence) is lifted;
 * with it, "1,000 clients" were 256 and 744 refused. */
export const W7_SERVER_ARGS = ["--max-connections-per-ip", "0"]

/** holdfast-server on 127.0.0.1:0 over `dir` (`args`: more flags; no `dir`
 * when they name another storage, e.g. `--postgres`). */
export async function startHoldfastServer({ bin, dir, args = [] }) {
  // Its default log filter, as shipped (RUST_LOG passes through if set).
  const data = dir ? ["--data", dir] : []
  const s = spawnServer(bin, ["--listen", "127.0.0.1:0", ...data, ...args], { what: "holdfast-server" })
  const url = await s.url
  return {
    url,
    pid: s.child.pid,
    peakRssKb: () => peakRssKb(s.child.pid),
    stop: () => stopChild(s.child, s.exited),
    stderr: s.stderr,
  }
}

/** Run holdfast-load with `args` (its file descriptor limit raised to the
 * hard limit: 1,000 idle sockets pass the usual soft 1,024); its JSON. */
export function runLoad(loadBin, args) {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', loadBin, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    })
    let out = ""
    let err = ""
    child.stdout.on("data", d => (out += d))
    child.stderr.on("data", d => (err += d))
    child.on("error", reject)
    child.on("exit", code => {
      const line = out.trim().split("\n").pop()
      try {
        if (code !== 0) throw new Error(`exit ${code}`)
        resolve({ result: JSON.parse(line), stderr: err })
      } catch (e) {
        reject(new Error(`holdfast-load failed (${e.message}):\n${err}\n${out}`))
      }
    })
  })
}

function defaultBin(name) {
  const target = process.env.CARGO_TARGET_DIR || path.join(root, "target")
  return path.join(target, "release", name)
}

/** One run: fresh server and data directory, the load, peak RSS, stop, clean up. */
async function runOne({ system, n, seconds, holdfastServerBin, loadBin, log }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `holdfast-w7-${system}-`))
  let server
  try {
    server =
      system === "holdfast"
        ? await startHoldfastServer({ bin: holdfastServerBin, dir, args: W7_SERVER_ARGS })
        : await startAmServer({ dir })
    const { result, stderr } = await runLoad(loadBin, ["--url", server.url, "--clients", String(n), "--seconds", String(seconds), "--window", "2"])
    result.server_peak_rss_kb = server.peakRssKb()
    const exit = await server.stop()
    server = null
    result.server_exit = exit.code ?? exit.signal
    result.data_bytes = dirBytes(dir)
    const rates = result.rate_windows.join(", ")
    log(
      `W7 ${system} N=${n}: ${result.acks} acks, rate windows [${rates}]/s, p50 ${result.p50_ms} ms, ` +
        `p99 ${result.p99_ms} ms, errors ${result.errors}, server peak RSS ${result.server_peak_rss_kb} kB` +
        (stderr.trim() ? ` (${stderr.trim().split("\n").pop()})` : ""),
    )
    return result
  } finally {
    if (server) await server.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export async function runW7({
  clients = [10, 100, 1000],
  seconds = 10,
  holdfastServerBin = defaultBin("holdfast-server"),
  loadBin = defaultBin("holdfast-load"),
  log = console.error,
  systems = ["holdfast", "automerge"],
} = {}) {
  const results = Object.fromEntries(systems.map(s => [s, {}]))
  for (const n of clients) {
    for (const system of systems) {
      results[system][n] = await runOne({ system, n, seconds, holdfastServerBin, loadBin, log })
    }
  }
  return results
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`)
    return i < 0 ? dflt : process.argv[i + 1]
  }
  const results = await runW7({
    clients: arg("clients", process.env.BENCH_W7_CLIENTS ?? "10,100,1000").split(",").map(Number),
    seconds: Number(arg("seconds", process.env.BENCH_W7_SECONDS ?? "10")),
    systems: arg("systems", "holdfast,automerge").split(","),
  })
  console.log(JSON.stringify(results, null, 2))
}
