import { z } from 'zod';

/**
 * The pieces every route module builds its OpenAPI paths from, each generated from the zod
 * schema that validates the request or types the answer, so the document cannot drift from
 * the code. The document is OpenAPI 3.1, whose schemas are JSON Schema 2020-12.
 */

export type JsonSchema = Record<string, unknown>;

/** An operation that needs an API key (`X-API-Key` or `Authorization: Bearer`). */
export const secured = { security: [{ apiKey: [] }, { bearer: [] }] };

/** An operation open without a key. */
export const open = { security: [] };

/**
 * Schemas the document names once under `components.schemas` and refers to elsewhere; filled by
 * {@link nameSchema}, read by src/http/openapi.ts.
 */
export const namedSchemas = new Map<z.core.$ZodType, { name: string; io: 'input' | 'output' }>();

/** Registers `schema` as `#/components/schemas/<name>` and returns it. */
export function nameSchema<Schema extends z.ZodType>(
  name: string,
  schema: Schema,
  io: 'input' | 'output' = 'output',
): Schema {
  namedSchemas.set(schema, { name, io });
  return schema;
}

/**
 * `schema` as JSON Schema: `input` for what a client sends (defaults optional, coercions as the
 * wire type), `output` for what the service answers. Named schemas below the root become
 * `$ref`s. Answers are open to fields added later (no `additionalProperties: false` unless
 * the schema is strict), and formatted answers (date-time, uuid) carry their format without zod's long pattern.
 */
export function jsonSchemaOf(schema: z.core.$ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    override(context) {
      const out = context.jsonSchema as JsonSchema;
      const named = namedSchemas.get(context.zodSchema);
      if (named !== undefined && context.path.length > 0) {
        for (const key of Object.keys(out)) delete out[key];
        out['$ref'] = `#/components/schemas/${named.name}`;
        return;
      }
      if (io !== 'output') return;
      const def = context.zodSchema._zod.def as { type: string; catchall?: unknown };
      if (def.type === 'object' && def.catchall === undefined) delete out['additionalProperties'];
      if (typeof out['format'] === 'string') delete out['pattern'];
    },
  }) as JsonSchema;
  return json;
}

interface Parameter {
  name: string;
  in: 'query' | 'path';
  required: boolean;
  description?: string;
  schema: JsonSchema;
}

/**
 * The parameters of an operation from the strict object schema that parses its query (or path)
 * values; a field's `.describe()` becomes the parameter's description.
 */
export function parametersOf(schema: z.ZodObject, where: 'query' | 'path' = 'query'): Parameter[] {
  const json = jsonSchemaOf(schema, 'input') as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    const parameter: Parameter = {
      name,
      in: where,
      required: where === 'path' || (json.required ?? []).includes(name),
      schema: rest,
    };
    if (typeof description === 'string') parameter.description = description;
    return parameter;
  });
}

/** A required JSON request body parsed by `schema`. */
export const jsonRequestBody = (schema: z.ZodType) => ({
  requestBody: { required: true, content: { 'application/json': { schema: jsonSchemaOf(schema, 'input') } } },
});

/** A JSON answer typed by `schema`. */
export const jsonResponse = (description: string, schema: z.ZodType) => ({
  description,
  content: { 'application/json': { schema: jsonSchemaOf(schema, 'output') } },
});

/** An answer with the service's error body (components.schemas.Error, from src/http/error-response.ts). */
export const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

/** The answers every keyed operation may give besides its own. */
export const keyedErrors = (scope: string) => ({
  '401': errorResponse('Missing or unknown API key.'),
  '403': errorResponse(`The key lacks the '${scope}' scope.`),
  '429': errorResponse(
    'Over the rate limit for this key (or too many failed keys from this address); retry after `Retry-After` seconds.',
  ),
});
