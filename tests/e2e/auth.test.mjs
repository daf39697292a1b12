// Access control end to end: holdfast-server with --auth-secret-file (HS256
// JWTs made here with node's crypto). automerge-repo 2.5.6 clients in node
// authenticate with `?token=` on their URL and sync the documents their
// token allows (another one is unavailable to them); the holdfast package
// in Chromium takes `sync: [{ url, token: () => ... }]` and calls the
// function again when it reconnects.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { startServer, launchBrowser, openPage, call, waitIn, automergeClient, docCondition, eventually, within, plain } from "./harness.mjs";

const SECRET = "an e2e HS256 secret, longer than thirty-two bytes";

/** An HS256 JWT with `claims`, expiring in an hour. */
function jwt(claims, secret = SECRET) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

const withToken = (url, token) => `${url}/?token=${token}`;

let server, browser, dir;
const clients = [];
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "holdfast-e2e-auth-"));
  writeFileSync(join(dir, "secret"), `${SECRET}\n`);
  server = await startServer({ args: ["--auth-secret-file", join(dir, "secret")] });
  browser = await launchBrowser();
});
after(async () => {
  for (const c of clients) await c.shutdown();
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The HTTP status a WebSocket upgrade to `url` gets when refused. */
function upgradeStatus(url) {
  return within(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.on("unexpected-response", (_req, res) => {
        resolve(res.statusCode);
        ws.terminate();
      });
      ws.on("open", () => reject(new Error(`the upgrade to ${url} was accepted`)));
      ws.on("error", () => {});
    }),
    "the upgrade's answer",
  );
}

test("automerge-repo clients with URL tokens sync what their token allows; the browser's token function runs on every reconnect", { timeout: 90_000 }, async () => {
  // Refused at the upgrade: wrong signature, expired.
  assert.equal(await upgradeStatus(withToken(server.ws, jwt({ read: "*" }, "not the server's secret"))), 401);
  assert.equal(await upgradeStatus(withToken(server.ws, jwt({ read: "*", exp: 1 }))), 401);

  // A writer creates two documents.
  const writer = automergeClient(withToken(server.ws, jwt({ sub: "writer", read: "*", write: "*", create: true })));
  clients.push(writer);
  const a = writer.create({ title: "A" });
  const b = writer.create({ title: "B" });

  // The browser, with a token function: finds both once the writer's push
  // reached the server.
  const page = await openPage(browser, server.http);
  const everything = jwt({ sub: "browser", read: "*", write: "*" });
  await call(
    page,
    ([ws, token]) => {
      window.tokenCalls = 0;
      return hf.open("holdfast-auth", [
        {
          url: ws,
          token: async () => {
            window.tokenCalls += 1;
            return token;
          },
        },
      ]);
    },
    [server.ws, everything],
    "the browser repo to open",
  );
  await waitIn(page, () => hf.status() === "online", undefined, "the browser to be online");
  for (const h of [a, b]) {
    await eventually(`the browser to find ${h.url}`, () => call(page, (url) => hf.find(url).then(() => true), h.url, "find"));
  }
  assert.equal(await call(page, () => window.tokenCalls), 1);

  // Reconnect: the function is called again, and the connection works.
  await call(page, () => hf.goOffline());
  await waitIn(page, () => hf.status() === "offline", undefined, "the browser to be offline");
  await call(page, () => hf.goOnline());
  await waitIn(page, () => hf.status() === "online" && window.tokenCalls === 2, undefined, "the browser to reconnect with a fresh token");
  await call(page, (url) => hf.change(url, (d) => (d.title = "A, edited in the browser")), a.url, "the browser's edit to be durable");
  await docCondition(a, (d) => d.title === "A, edited in the browser", "the writer to see the browser's edit");

  // A reader whose token allows A only.
  const reader = automergeClient(withToken(server.ws, jwt({ sub: "reader", read: [a.documentId], write: [a.url] })));
  clients.push(reader);
  const ra = await within(reader.find(a.url), "the reader to find A");
  assert.deepEqual(plain(ra.doc()), { title: "A, edited in the browser" });
  ra.change((d) => (d.title = "A, edited by the reader"));
  await docCondition(a, (d) => d.title === "A, edited by the reader", "the writer to see the reader's edit");
  await waitIn(page, (url) => hf.doc(url).title === "A, edited by the reader", a.url, "the browser to see the reader's edit");
  // B exists, but to the reader it is unavailable, like a missing document.
  await assert.rejects(within(reader.find(b.url), "the reader's find of B to fail"), /unavailable/i);

  assert.deepEqual(page.hfErrors, []);
  await page.context().close();
});
