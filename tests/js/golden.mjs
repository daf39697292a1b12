#!/usr/bin/env node
// Golden wire frames from the REAL automerge-repo 2.5.6 packages.
//
//   node tests/js/golden.mjs generate <dir>   write <dir>/<name>.cbor + <dir>/expected.json
//   node tests/js/golden.mjs check <dir>      decode every <dir>/*.cbor with automerge-repo's
//                                             decoder and compare with <dir>/expected.json
//
// Frames are encoded with `cbor.encode` from "@automerge/automerge-repo/slim",
// the very function @automerge/automerge-repo-network-websocket 2.5.6 calls
// before `socket.send` (WebSocketClientAdapter.send / WebSocketServerAdapter.send),
// and decoded with the `cbor.decode` its receiveMessage calls. Sync `data` is a
// real Automerge sync message from @automerge/automerge's generateSyncMessage.
//
// A few "tol-*" frames are written byte by byte (see `tolerance()` below) to
// exercise what a decoder must tolerate: non-minimal and indefinite lengths,
// undefined/null for absent fields, counts written as floats, unknown keys, a
// typed-array tag around `data`, any key order.
//
// expected.json:
//   { frames: [ { name, file, jsDecodable, message, ignoredKeys, note } ], urls: [...] }
//   - message: what the frame means, as a JSON object with automerge-repo's key
//     names. Byte strings are {"$bytes": "<hex>"}. Keys whose value is
//     undefined or null are left out (automerge-repo treats them as absent).
//   - ignoredKeys: dotted paths present on the wire that a decoder may drop
//     (unknown keys; `senderId`/`targetId` of `error`, which holdfast does not model).
//   - jsDecodable: false for frames automerge-repo's own decoder (cbor-x)
//     rejects; `check` then asserts that it does reject them.
//   - urls: Automerge URLs made by stringifyAutomergeUrl, with the id and heads as hex.

import fs from "node:fs"
import path from "node:path"
import process from "node:process"

import * as A from "@automerge/automerge"
import {
  cbor,
  encodeHeads,
  interpretAsDocumentId,
  parseAutomergeUrl,
  stringifyAutomergeUrl,
} from "@automerge/automerge-repo/slim"
import { Encoder as CborXEncoder } from "cbor-x"

const hex = b => Buffer.from(b).toString("hex")

// ---------------------------------------------------------------------------
// JSON form of decoded values
// ---------------------------------------------------------------------------

/** JSON form of a decoded JS value; undefined/null map entries are dropped. */
function toJson(v) {
  if (v instanceof Uint8Array) return { $bytes: hex(v) }
  if (typeof v === "bigint") return { $bigint: v.toString() }
  if (typeof v === "number" && !Number.isFinite(v)) return { $number: String(v) }
  if (v === undefined) return { $undefined: true }
  if (v instanceof Map)
    return { $map: [...v.entries()].map(([k, x]) => [toJson(k), toJson(x)]) }
  if (Array.isArray(v)) return v.map(toJson)
  if (v !== null && typeof v === "object") {
    if (v.constructor && v.constructor.name === "Tag")
      return { $tag: v.tag, value: toJson(v.value) }
    const out = {}
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined || x === null) continue
      out[k] = toJson(x)
    }
    return out
  }
  return v
}

/** Stable text form for deep comparison (sorted keys). */
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`
  if (v !== null && typeof v === "object")
    return `{${Object.keys(v)
      .sort()
      .map(k => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(",")}}`
  return JSON.stringify(v)
}

function withoutKeys(obj, paths) {
  for (const p of paths) deletePath(obj, p)
  return obj
}

function deletePath(obj, dotted) {
  const parts = dotted.split(".")
  let o = obj
  for (const p of parts.slice(0, -1)) {
    if (o === null || typeof o !== "object") return
    o = o[p]
  }
  if (o !== null && typeof o === "object") delete o[parts[parts.length - 1]]
}

// ---------------------------------------------------------------------------
// Realistic values
// ---------------------------------------------------------------------------

function fixtures() {
  // Fixed actor and time so that `generate` is reproducible.
  const actor = "a1".repeat(16)
  let doc = A.init({ actor })
  doc = A.change(doc, { time: 1763880000, message: "create" }, d => {
    d.title = "holdfast golden"
    d.items = ["durable", "recoverable"]
    d.count = 3
  })
  doc = A.change(doc, { time: 1763880001 }, d => {
    d.items.push("cheap to sync")
  })

  // The empty peer asks for the document: automerge-repo sends this as `request`.
  const empty = A.init({ actor: "b2".repeat(16) })
  const [, requestData] = A.generateSyncMessage(empty, A.initSyncState())

  // The peer that has it answers: a `sync` message carrying the changes.
  const [, state] = A.receiveSyncMessage(doc, A.initSyncState(), requestData)
  const [, syncData] = A.generateSyncMessage(doc, state)

  const docBytes = Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 11) & 0xff)
  const documentId = interpretAsDocumentId(docBytes)
  const heads = encodeHeads(A.getHeads(doc))

  // What DocHandle.broadcast puts in `data`: cbor.encode of the user's value.
  const ephemeralData = new Uint8Array(
    cbor.encode({ cursor: { line: 3, ch: 14 }, user: "alice", ts: 1763880000123 })
  )

  return {
    doc,
    heads,
    documentId,
    docBytes,
    requestData,
    syncData,
    ephemeralData,
    client: "peer-2f6b1c9d",
    server: "storage-server-sync-automerge-org",
    storageId: "3760df37-a4c6-4f66-9ecd-732039a9385d",
    storageId2: "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
  }
}

/** Frames encoded by automerge-repo's own encoder, as the adapter sends them. */
function realFrames(f) {
  // Objects are built with the key order automerge-repo builds them in.
  return [
    {
      name: "join",
      note: "WebSocketClientAdapter joinMessage() of a Repo with storage",
      obj: {
        type: "join",
        senderId: f.client,
        peerMetadata: { storageId: f.storageId, isEphemeral: false },
        supportedProtocolVersions: ["1"],
      },
    },
    {
      name: "join-ephemeral",
      note: "join of a Repo without storage: storageId is undefined on the wire (0xf7)",
      obj: {
        type: "join",
        senderId: f.client,
        peerMetadata: { storageId: undefined, isEphemeral: true },
        supportedProtocolVersions: ["1"],
      },
    },
    {
      name: "peer",
      note: "WebSocketServerAdapter's answer to join",
      obj: {
        type: "peer",
        senderId: f.server,
        peerMetadata: { storageId: f.storageId2, isEphemeral: false },
        selectedProtocolVersion: "1",
        targetId: f.client,
      },
    },
    {
      name: "error",
      note: "WebSocketServerAdapter's answer to an unsupported protocol version",
      obj: {
        type: "error",
        senderId: f.server,
        message: "unsupported protocol version",
        targetId: f.client,
      },
      ignoredKeys: ["senderId", "targetId"],
    },
    {
      name: "leave",
      note: "not sent by 2.5.6 (older versions did); encoded for completeness",
      obj: { type: "leave", senderId: f.client },
    },
    {
      name: "request",
      note: "DocSynchronizer: first sync message of a peer that has nothing",
      obj: {
        type: "request",
        targetId: f.server,
        documentId: f.documentId,
        data: f.requestData,
        senderId: f.client,
      },
    },
    {
      name: "sync",
      note: "DocSynchronizer: sync message carrying the document's changes",
      obj: {
        type: "sync",
        targetId: f.client,
        data: f.syncData,
        documentId: f.documentId,
        senderId: f.server,
      },
    },
    {
      name: "doc-unavailable",
      note: "CollectionSynchronizer/DocSynchronizer answer to an unservable request",
      obj: {
        type: "doc-unavailable",
        documentId: f.documentId,
        targetId: f.client,
        senderId: f.server,
      },
    },
    {
      name: "ephemeral",
      note: "DocSynchronizer broadcast + NetworkSubsystem count/sessionId/senderId",
      obj: {
        type: "ephemeral",
        targetId: f.server,
        documentId: f.documentId,
        data: f.ephemeralData,
        count: 42,
        sessionId: "k3j4h5g6f7",
        senderId: f.client,
      },
    },
    {
      name: "remote-subscription-change",
      note: "Repo change-remote-subs",
      obj: {
        type: "remote-subscription-change",
        targetId: f.server,
        add: [f.storageId2],
        remove: [f.storageId],
        senderId: f.client,
      },
    },
    {
      name: "remote-subscription-change-add-only",
      note: "Repo change-remote-subs with remove undefined (0xf7)",
      obj: {
        type: "remote-subscription-change",
        targetId: f.server,
        add: [f.storageId2],
        remove: undefined,
        senderId: f.client,
      },
    },
    {
      name: "remote-heads-changed",
      note: "Repo notify-remote-heads; timestamp is Date.now(), written as float64",
      obj: {
        type: "remote-heads-changed",
        targetId: f.client,
        documentId: f.documentId,
        newHeads: {
          [f.storageId2]: { heads: f.heads, timestamp: 1763880000123 },
        },
        senderId: f.server,
      },
    },
  ].map(fr => ({
    ...fr,
    bytes: cbor.encode(fr.obj),
    message: withoutKeys(toJson(fr.obj), fr.ignoredKeys ?? []),
    ignoredKeys: fr.ignoredKeys ?? [],
    jsDecodable: true,
  }))
}

// ---------------------------------------------------------------------------
// Hand-made tolerance frames
// ---------------------------------------------------------------------------

// A minimal CBOR writer, used ONLY to craft the tolerance frames byte by
// byte; every "real" frame above comes from automerge-repo's encoder.
const W = {
  head(major, n, width) {
    // width: undefined = minimal, else 1/2/4/8 bytes of argument
    const m = major << 5
    if (width === undefined) {
      width = n < 24 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : n < 0x100000000 ? 4 : 8
    }
    const out = [m | { 0: n, 1: 24, 2: 25, 4: 26, 8: 27 }[width]]
    for (let i = width - 1; i >= 0; i--) out.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn))
    return out
  },
  text: (s, width) => {
    const b = [...Buffer.from(s, "utf8")]
    return [...W.head(3, b.length, width), ...b]
  },
  bytes: (b, width) => [...W.head(2, b.length, width), ...b],
  textIndef: chunks => [0x7f, ...chunks.flatMap(c => W.text(c)), 0xff],
  bytesIndef: chunks => [0x5f, ...chunks.flatMap(c => W.bytes(c)), 0xff],
  map: (entries, width) => [
    ...W.head(5, entries.length, width),
    ...entries.flatMap(([k, v]) => [...W.text(k), ...v]),
  ],
  mapIndef: entries => [0xbf, ...entries.flatMap(([k, v]) => [...W.text(k), ...v]), 0xff],
  array: (items, width) => [...W.head(4, items.length, width), ...items.flat()],
  arrayIndef: items => [0x9f, ...items.flat(), 0xff],
  undef: [0xf7],
  null: [0xf6],
  f16: [0xf9], // followed by 2 bytes
  bool: b => [b ? 0xf5 : 0xf4],
}

function tolerance(f) {
  const id = f.documentId
  const bytes = b => W.bytes([...b])
  const frames = []
  const add = (name, note, raw, message, extra = {}) =>
    frames.push({
      name,
      note,
      bytes: Uint8Array.from(raw),
      message,
      ignoredKeys: extra.ignoredKeys ?? [],
      jsDecodable: extra.jsDecodable ?? true,
    })
  const syncMessage = {
    type: "sync",
    senderId: f.server,
    targetId: f.client,
    documentId: id,
    data: { $bytes: hex(f.syncData) },
  }

  // Lengths wider than needed. In node, automerge-repo's cbor.decode uses
  // cbor-x's native string extractor (cbor-extract) for frames of 140+ bytes,
  // and that throws "Unexpected end of buffer reading string" on any text or
  // byte string with an 8-byte length header (0x7b / 0x5b). So the large
  // frame uses at most 4-byte string headers, and 8-byte string headers only
  // appear in a frame under 140 bytes (which cbor-x decodes in plain JS).
  add(
    "tol-nonminimal-lengths",
    "sync with every length wider than needed: map 0xbb (8-byte), text 0x7a/0x79/0x78, bytes 0x5a",
    [
      ...W.head(5, 5, 8),
      ...W.text("type", 4), ...W.text("sync", 2),
      ...W.text("senderId", 2), ...W.text(f.server, 1),
      ...W.text("targetId", 1), ...W.text(f.client, 4),
      ...W.text("documentId", 4), ...W.text(id, 2),
      ...W.text("data", 1), ...W.bytes([...f.syncData], 4),
    ],
    syncMessage
  )
  add(
    "tol-64bit-lengths",
    "small leave frame (< 140 bytes) with 8-byte length headers on the map and every string",
    [
      ...W.head(5, 2, 8),
      ...W.text("type", 8), ...W.text("leave", 8),
      ...W.text("senderId", 8), ...W.text(f.client, 8),
    ],
    { type: "leave", senderId: f.client }
  )

  add(
    "tol-undefined-null",
    "optional fields as undefined (0xf7) and null (0xf6): storageId null, add undefined, remove null",
    W.map([
      ["type", W.text("remote-subscription-change")],
      ["senderId", W.text(f.client)],
      ["targetId", W.text(f.server)],
      ["add", W.undef],
      ["remove", W.null],
    ]),
    { type: "remote-subscription-change", senderId: f.client, targetId: f.server }
  )

  add(
    "tol-undefined-storage-id",
    "peer with peerMetadata.storageId null, 16-bit map headers like cbor-x",
    W.map(
      [
        ["type", W.text("peer")],
        ["senderId", W.text(f.server)],
        ["peerMetadata", W.map([["storageId", W.null], ["isEphemeral", W.bool(false)]], 2)],
        ["selectedProtocolVersion", W.text("1")],
        ["targetId", W.text(f.client)],
      ],
      2
    ),
    {
      type: "peer",
      senderId: f.server,
      targetId: f.client,
      peerMetadata: { isEphemeral: false },
      selectedProtocolVersion: "1",
    }
  )

  const ephemeral = count => [
    ["type", W.text("ephemeral")],
    ["senderId", W.text(f.client)],
    ["targetId", W.text(f.server)],
    ["count", count],
    ["sessionId", W.text("k3j4h5g6f7")],
    ["documentId", W.text(id)],
    ["data", bytes(f.ephemeralData)],
  ]
  const ephemeralMessage = count => ({
    type: "ephemeral",
    senderId: f.client,
    targetId: f.server,
    count,
    sessionId: "k3j4h5g6f7",
    documentId: id,
    data: { $bytes: hex(f.ephemeralData) },
  })
  add(
    "tol-float16-count",
    "ephemeral with count 7 written as float16 (f9 4700)",
    W.map(ephemeral([0xf9, 0x47, 0x00])),
    ephemeralMessage(7)
  )
  add(
    "tol-float32-count",
    "ephemeral with count 1000 written as float32 (fa 447a0000)",
    W.map(ephemeral([0xfa, 0x44, 0x7a, 0x00, 0x00])),
    ephemeralMessage(1000)
  )
  add(
    "tol-float64-count",
    "ephemeral with count 5 written as float64, as cbor-x writes non-u32 numbers",
    W.map(ephemeral([0xfb, ...new Uint8Array(new Float64Array([5]).buffer).reverse()])),
    ephemeralMessage(5)
  )

  add(
    "tol-unknown-keys",
    "join with unknown keys: top-level (nested map/array/tag/float/bytes values) and inside peerMetadata",
    W.map([
      ["futureFlag", W.bool(true)],
      ["type", W.text("join")],
      [
        "futureNested",
        W.map([
          ["list", W.array([[0x01], [0xc1, 0xfb, 0x41, 0xda, 0x48, 0x8e, 0x00, 0x00, 0x00, 0x00], W.bytes([1, 2])])],
          ["deeper", W.mapIndef([["x", W.arrayIndef([W.text("y"), W.undef])]])],
        ]),
      ],
      ["senderId", W.text(f.client)],
      [
        "peerMetadata",
        W.map([
          ["storageId", W.text(f.storageId)],
          ["extra", W.array([W.text("ignored")])],
          ["isEphemeral", W.bool(false)],
        ]),
      ],
      ["supportedProtocolVersions", W.array([W.text("1")])],
    ]),
    {
      type: "join",
      senderId: f.client,
      peerMetadata: { storageId: f.storageId, isEphemeral: false },
      supportedProtocolVersions: ["1"],
    },
    { ignoredKeys: ["futureFlag", "futureNested", "peerMetadata.extra"] }
  )

  add(
    "tol-indefinite-containers",
    "join as an indefinite-length map, with indefinite peerMetadata map and indefinite array",
    W.mapIndef([
      ["type", W.text("join")],
      ["senderId", W.text(f.client)],
      ["peerMetadata", W.mapIndef([["isEphemeral", W.bool(true)]])],
      ["supportedProtocolVersions", W.arrayIndef([W.text("1"), W.text("2")])],
    ]),
    {
      type: "join",
      senderId: f.client,
      peerMetadata: { isEphemeral: true },
      supportedProtocolVersions: ["1", "2"],
    }
  )

  add(
    "tol-indefinite-strings",
    "sync with indefinite-length text and byte strings; cbor-x (automerge-repo) rejects these, holdfast accepts them",
    W.map([
      ["type", W.textIndef(["sy", "nc"])],
      ["senderId", W.textIndef([f.server.slice(0, 5), "", f.server.slice(5)])],
      ["targetId", W.text(f.client)],
      ["documentId", W.textIndef([id.slice(0, 3), id.slice(3)])],
      ["data", W.bytesIndef([[...f.syncData.slice(0, 10)], [...f.syncData.slice(10)]])],
    ]),
    syncMessage,
    { jsDecodable: false }
  )

  // What cbor-x emits for a Uint8Array when tagUint8Array is on (its
  // default; automerge-repo turns it off): tag 64 around the byte string.
  const tagged = new CborXEncoder({ useRecords: false }).encode({
    type: "sync",
    senderId: f.server,
    targetId: f.client,
    documentId: id,
    data: f.syncData,
  })
  add(
    "tol-tag64-data",
    "sync encoded by cbor-x with tagUint8Array on (its default): data is tag 64 (d8 40) + bytes",
    tagged,
    syncMessage
  )

  add(
    "tol-key-order",
    "doc-unavailable with type last",
    W.map([
      ["documentId", W.text(id)],
      ["targetId", W.text(f.client)],
      ["senderId", W.text(f.server)],
      ["type", W.text("doc-unavailable")],
    ]),
    { type: "doc-unavailable", senderId: f.server, targetId: f.client, documentId: id }
  )
  return frames
}

function urls(f) {
  const heads = f.heads
  return [
    { url: stringifyAutomergeUrl({ documentId: f.documentId }), documentIdHex: hex(f.docBytes), headsHex: null },
    {
      url: stringifyAutomergeUrl({ documentId: f.documentId, heads }),
      documentIdHex: hex(f.docBytes),
      headsHex: A.getHeads(f.doc),
    },
    { url: stringifyAutomergeUrl({ documentId: f.documentId, heads: [] }), documentIdHex: hex(f.docBytes), headsHex: [] },
  ]
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

function generate(dir) {
  fs.mkdirSync(dir, { recursive: true })
  const f = fixtures()
  const frames = [...realFrames(f), ...tolerance(f)]
  const entries = []
  for (const fr of frames) {
    const file = `${fr.name}.cbor`
    fs.writeFileSync(path.join(dir, file), fr.bytes)
    entries.push({
      name: fr.name,
      file,
      jsDecodable: fr.jsDecodable,
      message: fr.message,
      ignoredKeys: fr.ignoredKeys,
      note: fr.note,
    })
  }
  const expected = {
    generator: "tests/js/golden.mjs generate",
    packages: {
      "@automerge/automerge-repo": pkgVersion("@automerge/automerge-repo"),
      "@automerge/automerge-repo-network-websocket": pkgVersion(
        "@automerge/automerge-repo-network-websocket"
      ),
      "@automerge/automerge": pkgVersion("@automerge/automerge"),
      "cbor-x": pkgVersion("cbor-x"),
    },
    frames: entries,
    urls: urls(f),
  }
  fs.writeFileSync(path.join(dir, "expected.json"), JSON.stringify(expected, null, 2) + "\n")
  // Everything written must pass its own check.
  const problems = check(dir)
  if (problems.length) {
    for (const p of problems) console.error(p)
    process.exit(1)
  }
  console.log(`golden generate: wrote ${entries.length} frames and expected.json to ${dir}`)
}

function pkgVersion(name) {
  const url = new URL(`./node_modules/${name}/package.json`, import.meta.url)
  return JSON.parse(fs.readFileSync(url, "utf8")).version
}

/** Returns a list of problems (empty when everything matches). */
function check(dir, stats = {}) {
  const problems = []
  const expectedPath = path.join(dir, "expected.json")
  if (!fs.existsSync(expectedPath)) return [`${expectedPath} does not exist`]
  const expected = JSON.parse(fs.readFileSync(expectedPath, "utf8"))
  const byFile = new Map((expected.frames ?? []).map(e => [e.file, e]))
  const files = fs.readdirSync(dir).filter(n => n.endsWith(".cbor")).sort()
  stats.frames = 0
  stats.rejected = 0
  for (const file of files) {
    const e = byFile.get(file)
    if (!e) {
      problems.push(`${file}: no entry in expected.json`)
      continue
    }
    byFile.delete(file)
    const bytes = fs.readFileSync(path.join(dir, file))
    let decoded
    try {
      decoded = cbor.decode(new Uint8Array(bytes))
    } catch (err) {
      if (e.jsDecodable === false) {
        stats.rejected++
        continue
      }
      problems.push(`${file}: automerge-repo's decoder threw: ${err.message}`)
      continue
    }
    if (e.jsDecodable === false) {
      problems.push(`${file}: expected automerge-repo's decoder to reject it, but it decoded`)
      continue
    }
    const got = toJson(decoded)
    for (const k of e.ignoredKeys ?? []) deletePath(got, k)
    const want = e.message
    if (canonical(got) !== canonical(want)) {
      problems.push(
        `${file}: decoded message differs from expected.json\n` +
          `  got:  ${canonical(got)}\n  want: ${canonical(want)}`
      )
      continue
    }
    stats.frames++
  }
  for (const file of byFile.keys()) problems.push(`${file}: listed in expected.json but missing`)

  stats.urls = 0
  for (const u of expected.urls ?? []) {
    try {
      const parsed = parseAutomergeUrl(u.url)
      const idHex = hex(interpretAsDocumentIdBytes(parsed.documentId))
      const heads = parsed.hexHeads ?? null
      if (idHex !== u.documentIdHex || canonical(heads) !== canonical(u.headsHex))
        problems.push(`url ${u.url}: parsed to id ${idHex} heads ${JSON.stringify(heads)}`)
      else if (stringifyAutomergeUrl({ documentId: parsed.documentId, heads: parsed.heads }) !== u.url)
        problems.push(`url ${u.url}: does not round-trip through stringifyAutomergeUrl`)
      else stats.urls++
    } catch (err) {
      problems.push(`url ${u.url}: ${err.message}`)
    }
  }
  return problems
}

function interpretAsDocumentIdBytes(documentId) {
  // parseAutomergeUrl also returns binaryDocumentId; re-parse for clarity.
  return parseAutomergeUrl(`automerge:${documentId}`).binaryDocumentId
}

function main(argv) {
  const [cmd, dir] = argv
  if (!dir || (cmd !== "generate" && cmd !== "check")) {
    console.error("usage: node tests/js/golden.mjs generate|check <dir>")
    process.exit(2)
  }
  if (cmd === "generate") return generate(dir)
  const stats = {}
  const problems = check(dir, stats)
  if (problems.length) {
    console.error(`golden check FAILED for ${dir}:`)
    for (const p of problems) console.error(`- ${p}`)
    console.error(`golden check: ${problems.length} problem(s)`)
    process.exit(1)
  }
  console.log(
    `golden check: ${stats.frames} frames match, ${stats.rejected} rejected as expected, ` +
      `${stats.urls} urls match (${dir})`
  )
}

main(process.argv.slice(2))
