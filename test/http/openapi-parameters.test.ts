import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../src/http/openapi.js';
import type { RouteContext } from '../../src/http/server.js';
import {
  documentedOperations,
  ReachedService,
  restRoutes,
  type JsonSchema,
  type OpenApiDocument,
  type Parameter,
} from './openapi-support.js';

/** Text values of what `schema` allows, as a client would put them in a URL. */
function valuesOf(schema: JsonSchema): fc.Arbitrary<string> {
  if (Array.isArray(schema['enum'])) return fc.constantFrom(...schema['enum'].map(String));
  if (schema['type'] === 'integer') {
    const min = BigInt((schema['minimum'] as number | undefined) ?? Number.MIN_SAFE_INTEGER);
    const max = BigInt((schema['maximum'] as number | undefined) ?? Number.MAX_SAFE_INTEGER);
    return fc.bigInt({ min, max }).map(String);
  }
  if (schema['type'] === 'string' && typeof schema['pattern'] === 'string') {
    return fc.stringMatching(new RegExp(schema['pattern']));
  }
  if (schema['type'] === 'string') {
    return fc.string({
      minLength: (schema['minLength'] as number | undefined) ?? 0,
      maxLength: (schema['maxLength'] as number | undefined) ?? 100,
    });
  }
  throw new Error(`no generator for the parameter schema ${JSON.stringify(schema)}`);
}

function contextOf(path: string, query: URLSearchParams, params: Record<string, string>): RouteContext {
  const search = query.size > 0 ? `?${query.toString()}` : '';
  return {
    request: { headers: {} } as RouteContext['request'],
    url: { pathname: path, search, searchParams: query },
    principal: undefined,
    params,
    readJson: () => Promise.reject(new Error('no body')),
    readJsonWithText: () => Promise.reject(new Error('no body')),
  };
}

describe('the documented parameters of the REST shim', () => {
  const document = buildOpenApiDocument('0.0.0') as unknown as OpenApiDocument;
  const routes = restRoutes();
  const withParameters = documentedOperations(document).filter(
    ({ operation }) => (operation.parameters ?? []).length > 0,
  );

  it('include every parameter-taking GET operation', () => {
    expect(withParameters.map(({ path }) => path).sort()).toEqual(
      [
        '/analytics/llm',
        '/analytics/performance',
        '/analytics/usage',
        '/dead-letters',
        '/events',
        '/events/{id}/proof',
        '/integrity/proof',
        '/integrity/verify',
      ].sort(),
    );
  });

  for (const { method, path, operation } of withParameters) {
    it(`property: ${method} ${path} accepts any values its parameters' schemas allow`, async () => {
      const route = routes.find((candidate) => candidate.method === method && candidate.path === path)!;
      const parameters: Parameter[] = operation.parameters ?? [];
      const values = fc.record(
        Object.fromEntries(parameters.map((parameter) => [parameter.name, valuesOf(parameter.schema)])),
        {
          requiredKeys: parameters
            .filter((parameter) => parameter.required)
            .map((parameter) => parameter.name),
        },
      );
      await fc.assert(
        fc.asyncProperty(values, async (given) => {
          const query = new URLSearchParams();
          const params: Record<string, string> = {};
          for (const parameter of parameters) {
            const value = given[parameter.name];
            if (value === undefined) continue;
            if (parameter.in === 'path') params[parameter.name] = value;
            else query.set(parameter.name, value);
          }
          // Parsed, the request reaches the (stub) service; a refused one throws BAD_REQUEST first.
          const outcome = await Promise.resolve()
            .then(() => route.handle(contextOf(path, query, params)))
            .then(
              () => 'answered',
              (error: unknown) => (error instanceof ReachedService ? 'reached the service' : error),
            );
          expect(outcome).toBe('reached the service');
        }),
        { numRuns: 200 },
      );
    });
  }
});
