// holdfast-server as a child process for the node tests (tests/js).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../../", import.meta.url).pathname;
export const SERVER_BIN =
  process.env.HOLDFAST_SERVER_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "debug", "holdfast-server");

/** Start holdfast-server on a free port with data directory `data`;
 * resolves once it listens: `{ url, stop(), stderr() }`. */
export async function startServer(data) {
  if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} is missing: run cargo build -p holdfast-server (make test does)`);
  const child = spawn(SERVER_BIN, ["--listen", "127.0.0.1:0", "--data", data], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (ws:\/\/[0-9.:]+)/);
      if (m) resolve(m[1]);
    });
    exited.then(({ code, signal }) => reject(new Error(`holdfast-server exited (${code ?? signal}): ${stderr}`)));
  });
  const stop = () => {
    child.kill("SIGINT");
    return exited;
  };
  return { url, stop, stderr: () => stderr };
}
