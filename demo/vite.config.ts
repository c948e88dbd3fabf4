import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The demo page: demo/web → demo/dist, served by demo/server.ts. It imports meterkit/react
// from src/react directly, so the page always shows the kit as it is in this checkout.
export default defineConfig({
  root: fileURLToPath(new URL("./web", import.meta.url)),
  base: "/",
  plugins: [react()],
  // No .env files or public folder: the page needs neither.
  envDir: false,
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL("./dist", import.meta.url)),
    emptyOutDir: true,
    // Small enough to read in the browser's dev tools; maps help people learn from the demo.
    sourcemap: true,
  },
  server: {
    // `npm run demo:dev`: hot reload against a running `npm start` on PORT (default 3000).
    proxy: { "/api": { target: `http://127.0.0.1:${process.env.PORT ?? 3000}`, changeOrigin: false } },
  },
});
