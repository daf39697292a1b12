// Build the benchmark site (bench/site/, git-ignored) with esbuild, the same
// way for both systems: each page's module is bundled and minified, its wasm
// file is copied next to it.
//
//   site/holdfast/   index.html, bench.js (pages/holdfast.js + pkg/), wasm/holdfast_bg.wasm
//   site/automerge/  index.html, bench.js (pages/automerge.js + automerge-repo 2.5.6), automerge.wasm
//   site/size/       the libraries alone (lib-*.js entries), minified: what W6 weighs;
//                    holdfast-react.js: holdfast/react alone (React external)
//
// Needs pkg/wasm/ (scripts/build-pkg.sh, release) and bench/node_modules.
// BENCH_PKG_WASM=<dir> takes the wasm module and its glue from <dir> instead
// of pkg/wasm/ (wasm-bindgen --target web --out-name holdfast output of the
// wasm-release profile): in a working tree where tests rebuild pkg/wasm/
// with --dev meanwhile.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const BENCH = fileURLToPath(new URL(".", import.meta.url));
export const SITE = join(BENCH, "site");
const ROOT = join(BENCH, "..");
export const PKG_WASM = process.env.BENCH_PKG_WASM ?? join(ROOT, "pkg", "wasm");

const page = (title) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title><link rel="icon" href="data:,"></head>
<body><script type="module" src="bench.js"></script></body></html>
`;

const common = { bundle: true, format: "esm", minify: true, target: "es2022", logLevel: "warning", legalComments: "none" };

// pkg/index.js imports its glue as "./wasm/holdfast.js": take it from PKG_WASM.
const wasmGlue = {
  name: "holdfast-wasm-glue",
  setup(b) {
    b.onResolve({ filter: /^\.\/wasm\/holdfast\.js$/ }, (args) =>
      args.importer === join(ROOT, "pkg", "index.js") ? { path: join(PKG_WASM, "holdfast.js") } : undefined,
    );
  },
};

export async function buildSite() {
  const hfWasm = join(PKG_WASM, "holdfast_bg.wasm");
  if (!existsSync(hfWasm)) throw new Error(`${PKG_WASM} is missing: run scripts/build-pkg.sh (make bench does)`);
  // `scripts/build-pkg.sh --dev` (tests) writes the same directory: its glue
  // exports the test hook `_failCommit`. Measure only the release build.
  const devBuild = () => readFileSync(join(PKG_WASM, "holdfast.js"), "utf8").includes("_failCommit");
  if (devBuild()) throw new Error(`${PKG_WASM} is a --dev build (test hooks, debug profile): run scripts/build-pkg.sh (make bench does)`);
  const amWasm = join(BENCH, "node_modules", "@automerge", "automerge", "dist", "automerge.wasm");
  rmSync(SITE, { recursive: true, force: true });
  for (const d of ["holdfast/wasm", "automerge", "size/wasm"]) mkdirSync(join(SITE, d), { recursive: true });

  writeFileSync(join(SITE, "holdfast", "index.html"), page("holdfast bench"));
  writeFileSync(join(SITE, "automerge", "index.html"), page("automerge-repo bench"));
  cpSync(hfWasm, join(SITE, "holdfast", "wasm", "holdfast_bg.wasm"));
  cpSync(amWasm, join(SITE, "automerge", "automerge.wasm"));
  cpSync(hfWasm, join(SITE, "size", "wasm", "holdfast_bg.wasm"));
  cpSync(amWasm, join(SITE, "size", "automerge.wasm"));

  await build({ ...common, plugins: [wasmGlue], entryPoints: { bench: join(BENCH, "pages", "holdfast.js") }, outdir: join(SITE, "holdfast") });
  await build({ ...common, entryPoints: { bench: join(BENCH, "pages", "automerge.js") }, outdir: join(SITE, "automerge") });
  await build({
    ...common,
    plugins: [wasmGlue],
    entryPoints: { holdfast: join(BENCH, "pages", "lib-holdfast.js"), automerge: join(BENCH, "pages", "lib-automerge.js") },
    outdir: join(SITE, "size"),
  });
  // holdfast/react on its own (React is the app's), reported beside W6.
  await build({ ...common, external: ["react"], entryPoints: { "holdfast-react": join(ROOT, "pkg", "react.js") }, outdir: join(SITE, "size") });
  // A --dev build written meanwhile would mix with the release files copied above.
  if (devBuild()) throw new Error(`${PKG_WASM} became a --dev build while the site was built: run scripts/build-pkg.sh and again`);
  return SITE;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildSite();
  console.log(`bench: site built in ${SITE}`);
}
