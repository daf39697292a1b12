// automerge-repo 2.5.6's node sync server as its own process, for the
// benchmark (W5, W7):
//
//   node bench/am-server.mjs --dir <data dir> [--port 0]
//
// What automerge-repo's sync-server example runs: a `ws` WebSocketServer
// behind an HTTP server (on 127.0.0.1 here), a Repo with NodeWSServerAdapter and NodeFSStorageAdapter,
// `sharePolicy: async () => false` (the server announces nothing; it still
// answers every document a client syncs, a new one included). Prints
// `listening on ws://127.0.0.1:PORT` on stdout once it accepts connections.
//
// stdin takes JSON lines; stdout answers each on one line:
//   {"id":1,"op":"wait","docs":{"<documentId>":["<hex head>",...]},"timeout_ms":60000}
//     → once the server repo's copy of every document includes those heads
//       (Automerge.getHeads' hex; checked every 5 ms while a wait is pending),
//       `await repo.flush(ids)`, then {"id":1,"ok":true}
//     → {"id":1,"ok":false,"error":"..."} on failure or timeout.
// NodeFSStorageAdapter writes with fs.promises.writeFile (no fsync): "flushed"
// means handed to the OS, not on the disk.
//
// Socket errors (ECONNRESET from a client that vanished) are logged, never
// fatal. SIGINT/SIGTERM: flush every document, exit 0.

import http from "node:http"
import { createInterface } from "node:readline"
import { WebSocketServer } from "ws"
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return dflt
  const v = process.argv[i + 1]
  if (v === undefined) throw new Error(`--${name} needs a value`)
  return v
}

const dir = arg("dir")
if (!dir) {
  console.error("usage: node am-server.mjs --dir <data dir> [--port 0]")
  process.exit(2)
}
const port = Number(arg("port", "0"))

// As in automerge-repo's sync-server example, the WebSocketServer has no
// server of its own (`noServer`); our HTTP server hands it the upgrades, and
// listens only once the Repo has connected the adapter: the Repo does that
// asynchronously (after reading its storage id), and a socket accepted before
// has no message handler — its `join` is ignored and the adapter's keep-alive
// terminates it 5 s later.
const wss = new WebSocketServer({ noServer: true })
wss.on("error", e => console.error("am-server: server error:", e.message))
wss.on("connection", socket => {
  // ws emits "error" on a socket (ECONNRESET, bad frames); without a listener
  // Node would throw it. The adapter then sees the socket's "close".
  socket.on("error", e => console.error("am-server: socket error:", e.code ?? e.message))
})

const adapter = new NodeWSServerAdapter(wss)
const adapterConnected = new Promise(resolve => {
  const connect = adapter.connect.bind(adapter)
  adapter.connect = (...args) => {
    connect(...args)
    resolve()
  }
})

const repo = new Repo({
  network: [adapter],
  storage: new NodeFSStorageAdapter(dir),
  sharePolicy: async () => false,
})

const server = http.createServer((req, res) => {
  res.writeHead(426).end("WebSocket only\n")
})
server.on("upgrade", (req, socket, head) => {
  socket.on("error", e => console.error("am-server: upgrade socket error:", e.code ?? e.message))
  wss.handleUpgrade(req, socket, head, ws => wss.emit("connection", ws, req))
})
server.on("clientError", (e, socket) => socket.destroy())

await adapterConnected
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening on ws://127.0.0.1:${server.address().port}\n`)
})

// --- the stdin protocol -----------------------------------------------------

/** Whether the repo's copy of `id` holds every change in `heads` (hex). */
function hasHeads(id, heads) {
  const handle = repo.handles[id]
  if (!handle || !handle.isReady()) return false
  return A.getMissingDeps(handle.doc(), heads).length === 0
}

/** Pending waits: { docs, resolve, reject, deadline } */
const pending = new Set()
let timer = null

function poll() {
  const now = Date.now()
  for (const w of pending) {
    let done = false
    try {
      done = Object.entries(w.docs).every(([id, heads]) => hasHeads(id, heads))
    } catch (e) {
      pending.delete(w)
      w.reject(e)
      continue
    }
    if (done) {
      pending.delete(w)
      w.resolve()
    } else if (now > w.deadline) {
      pending.delete(w)
      const missing = Object.entries(w.docs)
        .filter(([id, heads]) => !hasHeads(id, heads))
        .map(([id]) => id)
      w.reject(new Error(`timed out; missing ${missing.length} document(s): ${missing.slice(0, 3).join(", ")}`))
    }
  }
  if (pending.size === 0 && timer) {
    clearInterval(timer)
    timer = null
  }
}

function waitHeads(docs, timeoutMs) {
  return new Promise((resolve, reject) => {
    pending.add({ docs, resolve, reject, deadline: Date.now() + timeoutMs })
    poll()
    if (pending.size > 0 && !timer) timer = setInterval(poll, 5)
  })
}

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n")
}

async function handle(line) {
  let req
  try {
    req = JSON.parse(line)
  } catch (e) {
    reply({ id: null, ok: false, error: `bad JSON: ${e.message}` })
    return
  }
  const { id } = req
  try {
    if (req.op !== "wait") throw new Error(`unknown op ${JSON.stringify(req.op)}`)
    const docs = req.docs ?? {}
    await waitHeads(docs, req.timeout_ms ?? 60_000)
    await repo.flush(Object.keys(docs))
    reply({ id, ok: true })
  } catch (e) {
    reply({ id, ok: false, error: String(e?.message ?? e) })
  }
}

createInterface({ input: process.stdin }).on("line", line => {
  if (line.trim()) void handle(line)
})

// --- shutdown ---------------------------------------------------------------

let stopping = false
async function stop(signal) {
  if (stopping) return
  stopping = true
  try {
    await repo.flush()
    process.exit(0)
  } catch (e) {
    console.error(`am-server: flush on ${signal} failed:`, e)
    process.exit(1)
  }
}
process.on("SIGINT", () => void stop("SIGINT"))
process.on("SIGTERM", () => void stop("SIGTERM"))
