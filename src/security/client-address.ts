/**
 * The client's address. Behind a balancer every request comes from the balancer's address, so a
 * lockout or a limit per address would count every client as one. Only from peers listed in
 * MINATO_TRUSTED_PROXIES is `X-Forwarded-For` believed, read from the right: the rightmost address
 * that is not itself a trusted proxy is the client (what a client writes on the left is its own
 * claim; each trusted proxy appends the address it saw).
 */

/** An address as bytes: 4 for IPv4 (IPv4-mapped IPv6 too), 16 for IPv6; undefined when it is not one. */
export function parseAddress(text: string): Uint8Array | undefined {
  let value = text.trim();
  if (value.startsWith('[') && value.endsWith(']')) value = value.slice(1, -1);
  const zone = value.indexOf('%');
  if (zone !== -1) value = value.slice(0, zone);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(value)) {
    const parts = value.split('.').map(Number);
    return parts.every((part) => part <= 255) ? Uint8Array.from(parts) : undefined;
  }
  if (!/^[0-9a-fA-F:.]+$/.test(value) || !value.includes(':')) return undefined;
  let tail: number[] = [];
  // An IPv4 tail (`::ffff:1.2.3.4`) is two groups.
  const lastColon = value.lastIndexOf(':');
  if (value.slice(lastColon + 1).includes('.')) {
    const v4 = parseAddress(value.slice(lastColon + 1));
    if (v4?.length !== 4) return undefined;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    value = value.slice(0, lastColon + 1);
    if (!value.endsWith('::')) value = value.slice(0, -1);
  }
  const halves = value.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if ([...head, ...rest].some((group) => !/^[0-9a-fA-F]{1,4}$/.test(group))) return undefined;
  const count = head.length + rest.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const words = [
    ...head.map((g) => Number.parseInt(g, 16)),
    ...new Array(8 - count).fill(0),
    ...rest.map((g) => Number.parseInt(g, 16)),
    ...tail,
  ];
  const bytes = new Uint8Array(16);
  words.forEach((word, i) => {
    bytes[i * 2] = word >> 8;
    bytes[i * 2 + 1] = word & 0xff;
  });
  // IPv4-mapped (::ffff:a.b.c.d): the IPv4 address it is.
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12);
  return bytes;
}

type Network = { bytes: Uint8Array; bits: number };

function parseNetwork(text: string): Network | undefined {
  const slash = text.indexOf('/');
  const bytes = parseAddress(slash === -1 ? text : text.slice(0, slash));
  if (!bytes) return undefined;
  if (slash === -1) return { bytes, bits: bytes.length * 8 };
  const suffix = text.slice(slash + 1);
  let bits = /^\d{1,3}$/.test(suffix) ? Number(suffix) : Number.NaN;
  // An IPv4-mapped network (::ffff:10.0.0.0/104) is the IPv4 network it covers.
  if (bytes.length === 4 && text.includes(':')) bits -= 96;
  if (!Number.isInteger(bits) || bits < 0 || bits > bytes.length * 8) return undefined;
  return { bytes, bits };
}

/** Whether `text` is an IP address or a CIDR block (`10.0.0.0/8`, `fd00::/8`). */
export const isAddressOrCidr = (text: string) => parseNetwork(text.trim()) !== undefined;

function contains(network: Network, address: Uint8Array): boolean {
  if (address.length !== network.bytes.length) return false;
  let bits = network.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((address[i]! & mask) !== (network.bytes[i]! & mask)) return false;
  }
  return true;
}

/** Finds the client's address from the peer's and its `X-Forwarded-For`, trusting only `proxies`. */
export function createClientAddress(proxies: readonly string[]) {
  const networks = proxies.map((proxy) => parseNetwork(proxy.trim())).filter((n): n is Network => n !== undefined);
  const trusted = (text: string) => {
    const bytes = parseAddress(text);
    return bytes !== undefined && networks.some((network) => contains(network, bytes));
  };
  return (peer: string, forwardedFor: string | undefined): string => {
    if (networks.length === 0 || forwardedFor === undefined || !trusted(peer)) return peer;
    const hops = forwardedFor.split(',').map((hop) => hop.trim());
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      // Something that is no address (`unknown`, garbage) ends what can be believed: the last proxy saw it.
      if (parseAddress(hop) === undefined) return i === hops.length - 1 ? peer : hops[i + 1]!;
      if (!trusted(hop)) return hop;
    }
    // Every hop is a trusted proxy: the leftmost is the furthest known.
    return hops[0] || peer;
  };
}
