import { describe, expect, test } from 'bun:test';
import { loadConfig } from '../../src/config';
import { createClientAddress, isAddressOrCidr, parseAddress } from '../../src/security/client-address';

describe('the client address behind trusted proxies (MINATO_TRUSTED_PROXIES)', () => {
  const resolve = createClientAddress(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);

  test('from a trusted peer, the rightmost address that is not a trusted proxy is the client', () => {
    expect(resolve('127.0.0.1', '198.51.100.7')).toBe('198.51.100.7');
    // What the client wrote itself on the left is its own claim: the proxies' hops are read from the right.
    expect(resolve('127.0.0.1', '203.0.113.1, 198.51.100.7, 10.1.2.3')).toBe('198.51.100.7');
    expect(resolve('::ffff:127.0.0.1', '2001:db8::5')).toBe('2001:db8::5');
    expect(resolve('fd00::1', '198.51.100.7')).toBe('198.51.100.7');
    // Every hop a trusted proxy: the furthest one known.
    expect(resolve('127.0.0.1', '10.0.0.9, 10.0.0.8')).toBe('10.0.0.9');
    // Garbage ends what can be believed: the last address a trusted proxy saw.
    expect(resolve('127.0.0.1', 'unknown, 10.0.0.2')).toBe('10.0.0.2');
    expect(resolve('127.0.0.1', 'garbage')).toBe('127.0.0.1');
  });

  test('from any other peer, or without the setting, X-Forwarded-For is ignored', () => {
    expect(resolve('198.51.100.7', '127.0.0.1')).toBe('198.51.100.7');
    expect(resolve('127.0.0.1', undefined)).toBe('127.0.0.1');
    expect(createClientAddress([])('127.0.0.1', '198.51.100.7')).toBe('127.0.0.1');
  });

  test('addresses and CIDRs are parsed as such; anything else is a configuration error', () => {
    expect(parseAddress('::ffff:10.0.0.1')).toEqual(Uint8Array.from([10, 0, 0, 1]));
    expect(parseAddress('1:2:3:4:5:6:7:8')?.length).toBe(16);
    expect(parseAddress('1.2.3.256')).toBeUndefined();
    expect(parseAddress('1::2::3')).toBeUndefined();
    for (const good of ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', '0.0.0.0/0']) expect(isAddressOrCidr(good)).toBe(true);
    for (const bad of ['10.0.0.0/33', 'localhost', '10.0.0/8', '::/129']) expect(isAddressOrCidr(bad)).toBe(false);
    expect(loadConfig({ MINATO_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8' }).trustedProxies).toEqual(['127.0.0.1', '10.0.0.0/8']);
    expect(() => loadConfig({ MINATO_TRUSTED_PROXIES: 'nginx' })).toThrow(/MINATO_TRUSTED_PROXIES: "nginx" is not an IP address or CIDR/);
  });
});
