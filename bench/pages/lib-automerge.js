// W6: what an app ships to use automerge-repo 2.5.6 in a browser with IndexedDB
// and a WebSocket sync server: the repo's whole public API (which includes
// automerge's slim API as `Automerge` and `initializeWasm`), the IndexedDB
// storage adapter and the browser WebSocket adapter. automerge.wasm is weighed
// separately.
export * from "@automerge/automerge-repo/slim";
export { IndexedDBStorageAdapter } from "@automerge/automerge-repo-storage-indexeddb";
export { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
