/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` serves the console with hot reload and forwards the API to a monolith on :8080
// (`cargo run --bin omnidesk -- serve`); `npm run build` writes dist/, which the binary embeds.
const api = process.env.OMNIDESK_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    // The first load is budgeted (docs/benchmarks.md); what is not needed at once is split off.
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "/api": { target: api, ws: true },
      "/public": api,
    },
  },
  test: {
    environment: "jsdom",
    setupFiles: ["src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
