// The Vite + React example (examples/vite-react/) with the package as an
// app installs it: pkg/ (with the dev wasm) copied into the example's
// node_modules/holdfast. Vite's dev server and its production build
// (served by `vite preview`) each load in headless Chromium with no
// holdfast-specific Vite configuration: the .wasm resolves, a note added
// through the UI is saved, and it is there after a reload (IndexedDB).
// Needs scripts/build-pkg.sh --dev and scripts/setup.sh examples.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT, launchBrowser, freePort, within, TIMEOUT } from "./harness.mjs";

const EXAMPLE = join(ROOT, "examples", "vite-react");
const VITE = join(EXAMPLE, "node_modules", "vite", "bin", "vite.js");

/** Copy the package, as `npm install holdfast` would lay it out. */
function installPackage() {
  const pkg = join(ROOT, "pkg");
  if (!existsSync(join(pkg, "wasm", "holdfast_bg.wasm"))) throw new Error("pkg/wasm is not built: run scripts/build-pkg.sh --dev (make test does)");
  if (!existsSync(VITE)) throw new Error("examples/vite-react has no node_modules: run scripts/setup.sh examples (make test does)");
  const to = join(EXAMPLE, "node_modules", "holdfast");
  rmSync(to, { recursive: true, force: true });
  mkdirSync(to, { recursive: true });
  for (const f of ["index.js", "draft.js", "tabs.js", "share.js", "react.js", "index.d.ts", "react.d.ts", "package.json", "README.md"]) cpSync(join(pkg, f), join(to, f));
  cpSync(join(pkg, "wasm"), join(to, "wasm"), { recursive: true });
}

/** Start `vite <args>` on a free port; resolves with its base URL once it
 * prints it. */
async function startVite(args) {
  const port = await freePort();
  const child = spawn(process.execPath, [VITE, ...args, "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
    cwd: EXAMPLE,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", CI: "true" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const ready = new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d;
      const m = out.match(/Local:\s+(http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve(m[1]);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`vite ${args[0] ?? "dev"} exited (${code}) before serving:\n${out}`)));
  });
  const base = await within(ready, `vite ${args.join(" ")} to serve`);
  return {
    base,
    output: () => out,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", resolve);
        child.kill("SIGTERM");
      }),
  };
}

/** Add a note through the UI, wait until the app says it is saved, reload,
 * and find it again: the .wasm loaded, and IndexedDB kept the note. */
async function useTheApp(browser, base) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  const wasm = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && errors.push(`console.error: ${m.text()}`));
  page.on("response", (r) => {
    if (r.url().endsWith(".wasm")) wasm.push([r.status(), r.headers()["content-type"]]);
    if (r.status() >= 400) errors.push(`${r.status()} for ${r.url()}`);
  });
  try {
    await page.goto(base);
    await page.getByRole("heading", { name: "Notes" }).waitFor({ timeout: TIMEOUT });
    assert.match(page.url(), /#automerge:/, "the app put its document's URL in the hash");
    await page.getByLabel("note").fill("milk");
    await page.getByRole("button", { name: "Add" }).click();
    await page.getByText("1 saved").waitFor({ timeout: TIMEOUT });
    assert.deepEqual(await page.locator("li.note").allTextContents(), ["milk"]);
    await page.reload();
    await page.locator("li.note", { hasText: "milk" }).waitFor({ timeout: TIMEOUT });
    assert.deepEqual(await page.locator("li.note").allTextContents(), ["milk"], "the note is read back from IndexedDB");
    assert.deepEqual(errors, []);
    assert.ok(wasm.length >= 1 && wasm.every(([status, type]) => status === 200 && type === "application/wasm"), `wasm responses: ${JSON.stringify(wasm)}`);
  } finally {
    await context.close();
  }
}

let browser;
before(async () => {
  installPackage();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test("Vite's dev server serves the example, wasm and all, without configuration", async () => {
  const vite = await startVite([]);
  try {
    await useTheApp(browser, vite.base);
  } catch (e) {
    e.message += `\nvite output:\n${vite.output()}`;
    throw e;
  } finally {
    await vite.stop();
  }
});

test("Vite's production build emits the wasm as an asset, and the built app works", async () => {
  const dist = join(EXAMPLE, "dist");
  rmSync(dist, { recursive: true, force: true });
  const build = spawnSync(process.execPath, [VITE, "build"], { cwd: EXAMPLE, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  assert.equal(build.status, 0, `vite build failed:\n${build.stdout}${build.stderr}`);
  const assets = readdirSync(join(dist, "assets"));
  assert.ok(assets.some((f) => /^holdfast_bg-.*\.wasm$/.test(f)), `assets: ${assets}`);
  const vite = await startVite(["preview"]);
  try {
    await useTheApp(browser, vite.base);
  } finally {
    await vite.stop();
  }
});
