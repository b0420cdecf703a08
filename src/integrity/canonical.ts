/**
 * RFC 8785 (JSON Canonicalization Scheme) serialization: object keys sorted by
 * their UTF-16 code units, no whitespace, numbers in ECMAScript's shortest
 * round-trip form, strings escaped as `JSON.stringify` escapes them. Both sides
 * of a proof (the service and a client) hash these bytes, so two programs that
 * agree on the value agree on the hash whatever key order or spacing they saw.
 *
 * @throws TypeError for values JSON cannot hold (non-finite numbers, bigint,
 *   undefined inside arrays, functions, symbols).
 */
export function canonicalize(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('RFC 8785: non-finite numbers are not JSON');
      // JSON.stringify implements ECMAScript Number::toString, which RFC 8785 adopts (and prints -0 as 0).
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      // Plain loops and concatenation: this runs for every event stored and verified.
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + canonicalize(value[i]);
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      // Array.prototype.sort without a comparator compares UTF-16 code units, as RFC 8785 requires.
      const keys = Object.keys(record).sort();
      let out = '{';
      let first = true;
      for (const key of keys) {
        const item = record[key];
        if (item === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(key)}:${canonicalize(item)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`RFC 8785: a ${typeof value} is not JSON`);
  }
}
