import { describe, expect, it } from 'vitest';
import { httpsURL, httpURL } from './urls';

describe('httpURL', () => {
  it.each([
    ['https://blog.example/', 'https://blog.example/'],
    ['http://blog.localhost:8080/wp-admin', 'http://blog.localhost:8080/wp-admin'],
    ['HTTPS://Blog.Example/', 'HTTPS://Blog.Example/'],
    ['javascript:alert(1)', undefined],
    ['JavaScript:alert(1)', undefined],
    [' javascript:alert(1)', undefined],
    ['java\tscript:alert(1)', undefined],
    ['data:text/html,<script>alert(1)</script>', undefined],
    ['vbscript:x', undefined],
    ['/relative/path', undefined],
    ['//evil.example/', undefined],
    ['', undefined],
    [undefined, undefined],
    [null, undefined],
  ])('httpURL(%j) = %j', (v, want) => {
    expect(httpURL(v)).toBe(want);
  });

  it('httpsURL accepts only https', () => {
    expect(httpsURL('https://cdn.example/logo.svg')).toBe('https://cdn.example/logo.svg');
    expect(httpsURL('http://cdn.example/logo.svg')).toBeUndefined();
    expect(httpsURL('javascript:alert(1)')).toBeUndefined();
    expect(httpsURL('data:image/svg+xml,<svg/>')).toBeUndefined();
  });
});
