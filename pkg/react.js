// holdfast/react: React hooks over a holdfast Repo. React is a peer
// dependency; nothing here is loaded by the main entry point.
//
//   <RepoProvider repo={repo}> … </RepoProvider>
//   const [doc, change] = useDocument(url);   // doc: frozen, structurally shared
//   const handle = useHandle(url);
//   const state = useSyncState(url);          // "on-server" | "local-only"
//
// Components re-render when the document's `doc()` changes: at once for a
// change made in this tab, once durable for one from a peer or another tab.
// Because `doc()` keeps every unchanged object, `memo` and `useMemo` on any
// part of it skip what did not change.

import { createContext, createElement, useCallback, useContext, useEffect, useState, useSyncExternalStore } from "react";

const RepoContext = createContext(null);

/** Makes `repo` the one `useRepo` and the other hooks below it use. */
export function RepoProvider({ repo, children }) {
  return createElement(RepoContext.Provider, { value: repo }, children);
}

/** The repo of the nearest `RepoProvider`; throws without one. */
export function useRepo() {
  const repo = useContext(RepoContext);
  if (!repo) throw new Error("useRepo: no <RepoProvider repo={…}> above this component");
  return repo;
}

/**
 * The handle of `url` (an `automerge:` URL or document id): `undefined`
 * while `repo.find` runs and for an `undefined` url. If `find` rejects
 * (`DocumentUnavailableError`, …), the error is thrown during render, to
 * the nearest error boundary.
 */
export function useHandle(url) {
  const repo = useRepo();
  const [found, setFound] = useState(null);
  useEffect(() => {
    if (url === undefined) return undefined;
    let live = true;
    repo.find(url).then(
      (handle) => live && setFound({ repo, url, handle }),
      (error) => live && setFound({ repo, url, error }),
    );
    return () => {
      live = false;
    };
  }, [repo, url]);
  if (found === null || found.repo !== repo || found.url !== url) return undefined;
  if (found.error !== undefined) throw found.error;
  return found.handle;
}

const noWatch = () => () => {};

/**
 * `[doc, change]` for `url`: `doc` is `handle.doc()` (undefined until the
 * document is found, or once it is deleted); `change(fn)` is
 * `handle.change(fn)`, resolving with the heads once durable (it rejects
 * with `DocumentLoadingError` before the document is found).
 */
export function useDocument(url) {
  const handle = useHandle(url);
  const subscribe = useCallback((notify) => (handle ? handle._watch(notify) : noWatch()), [handle]);
  const read = () => (handle && !handle.isDeleted ? handle.doc() : undefined);
  const doc = useSyncExternalStore(subscribe, read, read);
  const change = useCallback(
    (fn) => {
      if (!handle) {
        const e = new Error(`change: document ${url} is not loaded yet`);
        e.name = "DocumentLoadingError";
        return Promise.reject(e);
      }
      return handle.change(fn);
    },
    [handle, url],
  );
  return [doc, change];
}

/** `handle.syncState` for `url` ("on-server" once a sync server has every
 * local change on its disk, else "local-only"); `undefined` until found. */
export function useSyncState(url) {
  const handle = useHandle(url);
  const subscribe = useCallback(
    (notify) => {
      if (!handle) return () => {};
      handle.on("sync-state", notify);
      return () => handle.off("sync-state", notify);
    },
    [handle],
  );
  const read = () => handle?.syncState;
  return useSyncExternalStore(subscribe, read, read);
}
