import { beforeEach, describe, expect, it } from 'vitest';
import { takeFragmentSecret } from './AdminSecret';

beforeEach(() => sessionStorage.clear());

describe('takeFragmentSecret', () => {
  it('decodes a percent-encoded fragment', () => {
    window.history.replaceState(null, '', '/invite#inv_a%2Bb');
    expect(takeFragmentSecret('k')).toBe('inv_a+b');
    expect(window.location.hash).toBe('');
  });

  it('keeps a malformed fragment raw instead of throwing', () => {
    window.history.replaceState(null, '', '/invite#%E0%A4%A');
    expect(takeFragmentSecret('k')).toBe('%E0%A4%A');
    expect(window.location.hash).toBe('');
    expect(sessionStorage.getItem('k')).toBe('%E0%A4%A');
  });
});
