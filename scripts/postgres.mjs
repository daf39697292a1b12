// A PostgreSQL of its own for tests and benchmarks (issue 16): Debian's
// binaries (scripts/setup.sh postgres installs them), a cluster initdb'd
// into a temporary directory, listening only on a Unix socket there.
import { execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A TCP port nothing listens on now (PostgreSQL's socket file is named
 * after it; the e2e harness restarts servers on such ports). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A PostgreSQL of its own (Debian's binaries, scripts/setup.sh postgres):
 * initdb into a temporary directory, listening only on a Unix socket there;
 * as the `postgres` user when run as root (PostgreSQL refuses root).
 * Resolves `{ url, psql(sql), stop() }`; `url` is a libpq connection
 * string, `psql` runs SQL as the `holdfast` role.
 */
export async function startPostgres() {
  const versions = existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql").filter((v) => existsSync(join("/usr/lib/postgresql", v, "bin", "initdb"))) : [];
  if (versions.length === 0) throw new Error("PostgreSQL is not installed: scripts/setup.sh postgres installs it");
  const bin = join("/usr/lib/postgresql", versions.sort((a, b) => Number(a) - Number(b)).at(-1), "bin");
  const dir = mkdtempSync(join(tmpdir(), "holdfast-pg-"));
  const root = process.getuid?.() === 0;
  if (root) execFileSync("chown", ["postgres:postgres", dir]);
  const run = (tool, args) => {
    const [cmd, all] = root ? ["runuser", ["-u", "postgres", "--", join(bin, tool), ...args]] : [join(bin, tool), args];
    return execFileSync(cmd, all, { stdio: "pipe" });
  };
  run("initdb", ["-D", join(dir, "data"), "-A", "trust", "-U", "holdfast", "--no-sync", "-E", "UTF8", "--locale", "C"]);
  const port = await freePort();
  run("pg_ctl", ["-D", join(dir, "data"), "-o", `-c listen_addresses='' -k ${dir} -p ${port}`, "-l", join(dir, "log"), "-w", "start"]);
  return {
    url: `host=${dir} port=${port} user=holdfast dbname=postgres`,
    psql(sql) {
      return run("psql", ["-h", dir, "-p", String(port), "-U", "holdfast", "-d", "postgres", "-qc", sql]).toString();
    },
    stop() {
      try {
        run("pg_ctl", ["-D", join(dir, "data"), "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

