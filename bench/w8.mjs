// W8: memory per open document, in the browser. For each system and each
// N of BENCH_W8_DOCS: N small documents are created in a fresh IndexedDB
// database; then, per repetition, the page is reloaded, the repo opened,
// memory taken (after a forced GC), all N documents found and read (W4's
// `w4Load`), and memory taken again. Per document = the difference / N.
//
// Two measures, both after `HeapProfiler.collectGarbage`:
// - the renderer processes' resident memory (VmRSS summed over every
//   renderer of this Chromium, from /proc): the JS heap, WebAssembly linear
//   memory (which the JS heap does not count) and the IndexedDB worker;
// - the page's JS heap in use (`Runtime.getHeapUsage`), for the split.
//
// Exports runW8(context, base, profile, helpers) → { [n]: { holdfast: [..],
// automerge: [..] } }, each entry { rssPerDoc, heapPerDoc } in bytes.
import { readdirSync, readFileSync } from "node:fs";

const W8_DOCS = (process.env.BENCH_W8_DOCS ?? "1000,10000").split(",").map(Number);
const W8_REPS = Number(process.env.BENCH_W8_REPS ?? 3);

function procText(pid, file) {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null; // gone meanwhile
  }
}

/** Resident bytes of every renderer process of the Chromium that uses
 * `profile` (its descendants with --type=renderer). */
export function rendererRss(profile) {
  const procs = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = procText(name, "cmdline");
    const stat = procText(name, "stat");
    if (cmd === null || stat === null) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    procs.push({ pid: Number(name), ppid, cmd, args: cmd.split("\0") });
  }
  const root = procs.find((p) => p.args.includes(`--user-data-dir=${profile}`) && !p.cmd.includes("--type="));
  if (!root) throw new Error(`W8: no Chromium process with --user-data-dir=${profile}`);
  const mine = new Set([root.pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) if (!mine.has(p.pid) && mine.has(p.ppid)) mine.add(p.pid), (grew = true);
  }
  let bytes = 0;
  for (const p of procs) {
    // Child processes rewrite their command line as one string.
    if (!mine.has(p.pid) || !p.cmd.includes("--type=renderer")) continue;
    const kb = /VmRSS:\s+(\d+) kB/.exec(procText(p.pid, "status") ?? "")?.[1];
    bytes += Number(kb ?? 0) * 1024;
  }
  return bytes;
}

async function memory(page, profile) {
  const s = await page.context().newCDPSession(page);
  try {
    await s.send("HeapProfiler.collectGarbage");
    const { usedSize } = await s.send("Runtime.getHeapUsage");
    return { heap: usedSize, rss: rendererRss(profile) };
  } finally {
    await s.detach();
  }
}

export async function runW8(context, base, profile, { systems, openBenchPage, gotoBench, call, dropDb, freshDb, log }) {
  const out = {};
  for (const n of W8_DOCS) {
    out[n] = {};
    for (const system of systems) {
      out[n][system] = [];
      const page = await openBenchPage(context, base, system);
      const db = freshDb(system, "w8");
      await call(page, "open", { db, sync: null });
      const { urls } = await call(page, "w4Prepare", n);
      for (let rep = 0; rep < W8_REPS; rep++) {
        await gotoBench(page);
        await call(page, "open", { db, sync: null });
        const before = await memory(page, profile);
        const { sum } = await call(page, "w4Load", urls);
        const expected = (n * (n - 1)) / 2;
        if (sum !== expected) throw new Error(`W8 ${system}: read ${sum} from ${n} documents, not ${expected}`);
        const after = await memory(page, profile);
        const r = { rssPerDoc: (after.rss - before.rss) / n, heapPerDoc: (after.heap - before.heap) / n };
        out[n][system].push(r);
        log(`W8 ${system} N=${n} rep ${rep}: ${Math.round(r.rssPerDoc)} B/doc resident, ${Math.round(r.heapPerDoc)} B/doc JS heap`);
      }
      await dropDb(context, base, system, page, db);
    }
  }
  return out;
}
