import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';

const load = (env: Record<string, string>) => loadConfig(env, '/srv/app');
const problemsOf = (env: Record<string, string>): readonly string[] => {
  try {
    load(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('the configuration was accepted');
};

describe('CORS_ORIGINS', () => {
  it('is same origin only when unset or blank', () => {
    expect(load({}).cors.origins).toEqual([]);
    expect(load({ CORS_ORIGINS: '  ' }).cors.origins).toEqual([]);
  });

  it('reads a comma list of origins into their serialized form', () => {
    expect(
      load({ CORS_ORIGINS: 'https://Console.Example.com, http://localhost:5173,https://a.test:443,' }).cors
        .origins,
    ).toEqual(['https://console.example.com', 'http://localhost:5173', 'https://a.test']);
  });

  it('lets any origin in only when * is given alone', () => {
    expect(load({ CORS_ORIGINS: '*' }).cors.origins).toBe('*');
    expect(load({ CORS_ORIGINS: ' * ' }).cors.origins).toBe('*');
    const problems = problemsOf({ CORS_ORIGINS: '*,https://a.test' });
    expect(problems).toEqual([expect.stringMatching(/^CORS_ORIGINS: .*"\*" must stand alone/)]);
  });

  it('names CORS_ORIGINS and every bad entry at once, beside the other variables’ problems', () => {
    const bad = [
      'https://a.test/',
      'https://a.test/app',
      'a.test',
      'ftp://a.test',
      'https://user@a.test',
      'https://*.a.test',
      'https://a.test?x=1',
    ];
    const problems = problemsOf({ CORS_ORIGINS: ['https://ok.test', ...bad].join(','), PRODUCER_PORT: 'x' });
    for (const entry of bad) {
      expect(problems).toContainEqual(expect.stringMatching(/^CORS_ORIGINS: /));
      expect(problems.some((problem) => problem.includes(JSON.stringify(entry)))).toBe(true);
    }
    expect(problems.filter((problem) => problem.startsWith('CORS_ORIGINS:'))).toHaveLength(bad.length);
    expect(problems.some((problem) => problem.startsWith('PRODUCER_PORT:'))).toBe(true);
  });

  it('refuses a list of nothing but commas', () => {
    expect(problemsOf({ CORS_ORIGINS: ' , ,' })).toEqual([
      expect.stringMatching(/^CORS_ORIGINS: lists no origin/),
    ]);
  });
});
