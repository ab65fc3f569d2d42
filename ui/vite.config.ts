import { defineConfig } from 'vite';

// `npm run dev` serves the UI with hot reload and sends /api to a running `berth run` (hack/demo's, by
// default), so the cookie and the stream stay same-origin as they are when berth serves ui/dist itself.
const berth = process.env.BERTH_URL ?? 'http://localhost:8080';

export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  server: {
    port: 5173,
    proxy: { '/api': { target: berth, changeOrigin: true } },
  },
  preview: {
    proxy: { '/api': { target: berth, changeOrigin: true } },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    assetsInlineLimit: 0,
  },
});
