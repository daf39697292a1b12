// Types for holdfast/react (hand-written; see react.js).
import type { ReactNode } from "react";
import type { AutomergeUrl, ChangeFn, DocHandle, DocumentId, Heads, Materialized, Repo, SyncState } from "./index.js";

/** Makes `repo` the one `useRepo` and the other hooks below it use. */
export function RepoProvider(props: { repo: Repo; children?: ReactNode }): ReactNode;

/** The repo of the nearest `RepoProvider`; throws without one. */
export function useRepo(): Repo;

/** The handle of `url`: `undefined` while it is being found (and for an
 * `undefined` url). A rejected find is thrown to the error boundary. */
export function useHandle<T = Record<string, unknown>>(url: AutomergeUrl | DocumentId | undefined): DocHandle<T> | undefined;

/** `[doc, change]`: `doc` is the handle's frozen, structurally shared
 * `doc()` (undefined until found); `change` resolves with the heads once
 * the change is durable. */
export function useDocument<T = Record<string, unknown>>(
  url: AutomergeUrl | DocumentId | undefined,
): [Materialized<T> | undefined, (fn: ChangeFn<T>) => Promise<Heads>];

/** The handle's `syncState` (undefined until found); re-renders when it changes. */
export function useSyncState(url: AutomergeUrl | DocumentId | undefined): SyncState | undefined;
