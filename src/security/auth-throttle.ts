import { isIPv6 } from 'node:net';
import { digestSecret } from './authenticate.js';
import { BUCKETS_PER_WINDOW, MINUTE_MS, WindowTable } from './sliding-window.js';

/**
 * Failed authentication per client address, in this process: once an address has failed
 * `failuresPerMinute` times within a minute (the sliding window of sliding-window.ts), its
 * requests are refused with 429 and Retry-After before their key is looked up, so guessing costs
 * no database lookup. Secrets this process accepted within the last {@link VOUCH_MS} still pass
 * (to the usual check): a client sharing a NAT or proxy address with a prober keeps working.
 */
export interface AuthThrottle {
  /**
   * Seconds the address must wait before presenting `presented`, or undefined when it may try
   * now (it is not throttled, or the secret was accepted lately).
   */
  refusal(address: string | undefined, presented: string | undefined): number | undefined;
  /** Counts a failed authentication (a 401 answered) from the address. */
  failed(address: string | undefined): void;
  /** Remembers a secret that authenticated, from any address (only its digest is held). */
  vouch(presented: string): void;
}

/** How long an accepted secret passes a throttled address's check. */
const VOUCH_MS = 60 * MINUTE_MS;
const MAX_VOUCHED = 10_000;

/**
 * The address a limit applies to: IPv4 as it is (IPv4-mapped IPv6 too), IPv6 by its /64, which
 * one host usually holds whole; a host rotating through its /64 is still one address here.
 */
export function throttleKeyOf(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!isIPv6(address)) return address;
  let text = address.split('%')[0]!; // a zone (fe80::1%eth0) names an interface, not a host
  // An IPv4 tail (::1.2.3.4) is two groups.
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest = ''] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === '' ? [] : rest.split(':');
  const groups = text.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, '').toLowerCase())
    .join(':')}::/64`;
}

export function createAuthThrottle(options: {
  failuresPerMinute: number;
  now?: () => number;
  /** Addresses tracked at most (a flood from many addresses forgets the oldest). */
  maxAddresses?: number;
}): AuthThrottle {
  const now = options.now ?? Date.now;
  const limit = options.failuresPerMinute;
  const windows = new WindowTable(MINUTE_MS / BUCKETS_PER_WINDOW, options.maxAddresses);
  const vouched = new Map<string, number>();
  const digestOf = (secret: string) => digestSecret(secret).toString('base64');
  return {
    refusal(address, presented) {
      // Nothing failed lately: the common case costs one comparison.
      if (windows.size === 0 || address === undefined) return undefined;
      const counts = windows.get(throttleKeyOf(address));
      if (counts === undefined) return undefined;
      const at = now();
      const waitMs = counts.waitBelow(at, limit, windows.bucketMs);
      if (waitMs === 0) return undefined;
      if (presented !== undefined && presented !== '' && (vouched.get(digestOf(presented)) ?? 0) > at) {
        return undefined;
      }
      return Math.max(1, Math.ceil(waitMs / 1000));
    },
    vouch(presented) {
      const digest = digestOf(presented);
      vouched.delete(digest); // re-inserted last: the oldest-vouched are forgotten first
      if (vouched.size >= MAX_VOUCHED) vouched.delete(vouched.keys().next().value!);
      vouched.set(digest, now() + VOUCH_MS);
    },
    failed(address) {
      if (address === undefined) return;
      const at = now();
      windows.of(throttleKeyOf(address), at).add(at, windows.bucketMs);
    },
  };
}
