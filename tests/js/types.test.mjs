// pkg/index.d.ts against real usage: `tsc --noEmit` over types/usage.ts,
// which uses the whole public API (Draft<T> with Text and Counter included)
// and holds `@ts-expect-error` lines for misuses the types must refuse.
// TypeScript is pinned in this directory's package.json.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

test("index.d.ts type-checks the whole API as an app uses it (tsc --noEmit, strict)", () => {
  const tsc = fileURLToPath(new URL("./node_modules/typescript/bin/tsc", import.meta.url));
  const project = fileURLToPath(new URL("./types/", import.meta.url));
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", project], { encoding: "utf8" });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
