// Type-checked, never run: holdfast/react as a typed app uses it (see
// usage.ts).
import { createElement } from "react";
import { Counter, Text, type Heads, type Repo, type SyncState } from "../../../pkg/index.js";
import { RepoProvider, useDocument, useHandle, useRepo, useSyncState } from "../../../pkg/react.js";

interface Note {
  title: string;
  body: Text;
  likes: Counter;
}

export function NoteView({ url }: { url: `automerge:${string}` }) {
  const [doc, change] = useDocument<Note>(url);
  const handle = useHandle<Note>(url);
  const repo: Repo = useRepo();
  const state: SyncState | undefined = useSyncState(url);
  if (!doc) return null;
  const title: string = doc.title;
  const body: string = doc.body;
  const likes: number = doc.likes;
  const like = (): Promise<Heads> =>
    change((d) => {
      d.likes.increment();
      d.body.insertAt(0, "!");
    });
  // @ts-expect-error: the draft's counter is a Counter
  void change((d) => (d.likes = 2));
  void [title, body, likes, handle?.url, repo.closed, state, like];
  return createElement("h1", null, doc.title);
}

export function App({ repo }: { repo: Repo }) {
  return createElement(RepoProvider, { repo }, createElement(NoteView, { url: "automerge:abc" }));
}
