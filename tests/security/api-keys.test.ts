import { describe, expect, test } from 'bun:test';
import { allows, findKey, parseKeys, presentedKey, sha256 } from '../../src/security/api-keys';

describe('API key entries', () => {
  test('keys are hashed with standard SHA-256, so `printf %s "$KEY" | sha256sum` gives the stored form', () => {
    expect(sha256('abc').toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const hashed = parseKeys('sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad id=abc', undefined);
    expect(findKey(hashed, 'abc')?.id).toBe('abc');
  });

  test('scopes, ids and per-key rate limits; generate by default', () => {
    const [plain, admin, scraper] = parseKeys(
      'plain-key-0123456789, admin-key-0123456789 admin id=ops rpm=5, scrape-key-0123456789 metrics',
      undefined,
    );
    expect([...plain!.scopes]).toEqual(['generate']);
    expect(plain!.id).toBe(`key-${sha256('plain-key-0123456789').toString('hex').slice(0, 8)}`);
    expect(admin).toEqual(expect.objectContaining({ id: 'ops', rpm: 5 }));
    expect(allows(admin!, 'generate') && allows(admin!, 'metrics') && allows(admin!, 'admin')).toBe(true);
    expect(allows(scraper!, 'metrics')).toBe(true);
    expect(allows(scraper!, 'generate')).toBe(false);
    expect(allows(plain!, 'admin')).toBe(false);
  });

  test('a key file: one entry per line, comments and blank lines ignored, hashes allowed', () => {
    const digest = sha256('file-key-0123456789').toString('hex');
    const keys = parseKeys(undefined, {
      path: 'keys.txt',
      text: `# team keys\n\nsha256:${digest} id=team  # the team's key\r\nother-key-0123456789 admin\n`,
    });
    expect(keys.map((key) => key.id)).toEqual(['team', expect.stringMatching(/^key-/)]);
    expect(findKey(keys, 'file-key-0123456789')?.id).toBe('team');
  });

  test('bad entries are refused with where they are, never with the key itself', () => {
    const attempt = () =>
      parseKeys('short, good-key-0123456789 superuser, sha256:abc, dup-key-0123456789a id=x, dup-key-0123456789b id=x', undefined);
    expect(attempt).toThrow();
    try {
      attempt();
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toContain('MINATO_API_KEYS entry 1: a key must have at least 16 characters');
      expect(message).toContain('"superuser" is not a scope');
      expect(message).toContain('64 hex digits');
      expect(message).toContain('"x" is used 2 times');
      expect(message).not.toContain('good-key-0123456789');
    }
  });

  test('findKey matches only the exact key', () => {
    const keys = parseKeys('aaaa-key-0123456789, bbbb-key-0123456789', undefined);
    expect(findKey(keys, 'bbbb-key-0123456789')).toBe(keys[1]);
    expect(findKey(keys, 'bbbb-key-012345678')).toBeUndefined();
    expect(findKey(keys, 'bbbb-key-0123456789 ')).toBeUndefined();
    expect(findKey(keys, '')).toBeUndefined();
  });

  test('the key comes from X-API-Key or a Bearer token', () => {
    expect(presentedKey('Bearer abc', undefined)).toBe('abc');
    expect(presentedKey('bearer   abc ', undefined)).toBe('abc');
    expect(presentedKey('Basic abc', undefined)).toBeUndefined();
    expect(presentedKey('Bearer a b', undefined)).toBeUndefined();
    expect(presentedKey(undefined, 'xyz')).toBe('xyz');
    expect(presentedKey(undefined, undefined)).toBeUndefined();
    // The same key in both headers is one key; two different ones are refused, not silently chosen.
    expect(presentedKey('Bearer abc', 'abc')).toBe('abc');
    expect(presentedKey('Basic Zm9vOmJhcg==', 'abc')).toBe('abc');
    expect(() => presentedKey('Bearer abc', 'xyz')).toThrow('two different keys');
  });

  test('the same secret listed twice is refused at start-up, in clear or hashed', () => {
    const secret = 'twice-listed-key-0123456789';
    expect(() => parseKeys(`${secret} generate, ${secret} admin id=ops`, undefined)).toThrow('the same key is already listed');
    const hashed = `sha256:${new Bun.CryptoHasher('sha256').update(secret).digest('hex')}`;
    expect(() => parseKeys(secret, { path: 'keys.txt', text: `${hashed} admin` })).toThrow(
      'keys.txt line 1: the same key is already listed',
    );
    try {
      parseKeys(`${secret}, ${secret} admin`, undefined);
    } catch (error) {
      expect(String(error)).not.toContain(secret);
    }
  });
});
