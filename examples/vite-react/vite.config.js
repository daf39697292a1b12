// Nothing holdfast-specific: the package's .wasm resolves in Vite's dev
// server and in its production build as it is.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({ plugins: [react()] });
