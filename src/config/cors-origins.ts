/** `CORS_ORIGINS`: `'*'` (any origin, never with credentials), or the origins a browser may call from. */
export type CorsOrigins = '*' | readonly string[];

/**
 * Parses CORS_ORIGINS: a comma list of origins (`scheme://host[:port]`, http or https), or `*`
 * alone. Returns the origins in their serialized form (lower-case host, default port dropped)
 * and one problem per bad entry, each naming it: origins are public, unlike most variables.
 */
export function parseCorsOrigins(value: string): { origins: CorsOrigins; problems: string[] } {
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 1 && entries[0] === '*') return { origins: '*', problems: [] };
  const problems: string[] = [];
  const origins: string[] = [];
  if (entries.length === 0) problems.push('lists no origin (leave it unset for same origin only)');
  for (const entry of entries) {
    const shown = JSON.stringify(entry.length > 100 ? `${entry.slice(0, 100)}…` : entry);
    if (entry === '*') {
      problems.push('"*" must stand alone (CORS_ORIGINS=*), not beside other origins');
      continue;
    }
    const origin = corsOriginOf(entry);
    if (origin === undefined) {
      problems.push(
        `${shown} is not an origin: give scheme://host[:port] with http or https, no path, no trailing slash`,
      );
    } else {
      origins.push(origin);
    }
  }
  return { origins, problems };
}

function corsOriginOf(entry: string): string | undefined {
  // Nothing after the authority: a path, even "/", a query or a fragment is not part of an origin.
  if (!/^https?:\/\/[^/?#@\s]+$/i.test(entry) || !URL.canParse(entry)) return undefined;
  const parsed = new URL(entry);
  // WHATWG URLs take hosts such as "*.example.com"; an origin's is a DNS name or an IP address.
  if (!/^([a-z0-9-]+\.)*[a-z0-9-]+$|^\[[0-9a-f:.]+\]$/.test(parsed.hostname)) return undefined;
  return parsed.origin;
}
