// What the tests that run the wasm engine in node against a real server
// share: a browser-like WebSocket, and a bounded wait.
//
// `ws` is installed with @automerge/automerge-repo-network-websocket (pinned
// in package-lock.json); node 20 has no WebSocket of its own.
import { WebSocket as WsWebSocket } from "ws";

/**
 * The browser WebSocket the wasm module's network adapter expects, on top of
 * `ws`: the adapter checks `ev instanceof MessageEvent`, and ws delivers its
 * own event class, so messages are re-wrapped in node's MessageEvent.
 */
class NodeWebSocket extends WsWebSocket {
  get onmessage() {
    return super.onmessage;
  }
  set onmessage(fn) {
    super.onmessage = typeof fn === "function" ? (ev) => fn(new MessageEvent("message", { data: ev.data })) : fn;
  }
}
globalThis.WebSocket ??= NodeWebSocket;

/** Reject naming `what` if `promise` takes longer than `ms`. */
export function within(promise, what, ms = 15_000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
