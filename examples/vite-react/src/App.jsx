import { memo, useState } from "react";
import { useDocument } from "holdfast/react";

// Re-rendered only when its own note changes (doc() is structurally shared).
const Note = memo(function Note({ note }) {
  return <li className="note">{note.text}</li>;
});

export function App({ url }) {
  const [doc, change] = useDocument(url);
  const [text, setText] = useState("");
  const [saved, setSaved] = useState(0);
  if (!doc) return <p>Loading…</p>;

  const add = async (e) => {
    e.preventDefault();
    if (!text) return;
    setText("");
    // Shown at once; the promise resolves once the note is on disk.
    await change((d) => {
      d.notes.push({ text });
    });
    setSaved((n) => n + 1);
  };

  return (
    <main>
      <h1>{doc.title}</h1>
      <form onSubmit={add}>
        <input aria-label="note" value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit">Add</button>
      </form>
      <ul>
        {doc.notes.map((note, i) => (
          <Note key={i} note={note} />
        ))}
      </ul>
      <p className="saved">{saved} saved</p>
    </main>
  );
}
