/// <reference types="vitest" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The build goes straight into the Go package that embeds it
// (internal/portal); TestDistFresh there checks it matches these sources.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: '../internal/portal/dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: { '/v1': 'http://127.0.0.1:7070' },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['src/test/setup.ts'],
    css: false,
    testTimeout: 30000,
  },
});
