import '@testing-library/jest-dom/vitest';
import { cleanup, configure } from '@testing-library/react';
import { afterEach } from 'vitest';

afterEach(() => cleanup());

// Pages poll every 1-2 s (jobs, site status); findBy* and waitFor wait up
// to 5 s on a shared 2-core machine. A ceiling, not a speed target.
configure({ asyncUtilTimeout: 5000 });

// jsdom lacks these; Mantine uses them.
window.matchMedia ||= ((query: string) => ({
  matches: false,
  media: query,
  onchange: null,
  addListener: () => {},
  removeListener: () => {},
  addEventListener: () => {},
  removeEventListener: () => {},
  dispatchEvent: () => false,
})) as unknown as typeof window.matchMedia;
globalThis.ResizeObserver ||= class {
  observe() {}
  unobserve() {}
  disconnect() {}
} as unknown as typeof ResizeObserver;
// Mantine's Select scrolls its options into view.
Element.prototype.scrollIntoView ||= function () {};
