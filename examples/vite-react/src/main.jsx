import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Repo } from "holdfast";
import { RepoProvider } from "holdfast/react";
import { App } from "./App.jsx";

// One repo for the page: documents in IndexedDB database "vite-example";
// add `sync: "ws://localhost:3030"` to sync through a holdfast-server.
const repo = await Repo.open({ indexedDB: "vite-example" });

// The document is named in the URL's hash; a new one is made on first visit.
let url = location.hash.slice(1);
if (!url.startsWith("automerge:")) {
  const handle = await repo.create({ title: "Notes", notes: [] });
  url = handle.url;
  history.replaceState(null, "", `#${url}`);
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <RepoProvider repo={repo}>
      <App url={url} />
    </RepoProvider>
  </StrictMode>,
);
