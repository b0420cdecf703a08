// Pieces of the OpenAPI document that every group of paths uses (src/http/openapi.ts and the
// integrity routes' own paths), so each says once what an error, a keyed operation or a JSON body is.

/** Spread into an operation that needs an API key (`X-API-Key` or `Authorization: Bearer`). */
export const secured = { security: [{ apiKey: [] }, { bearer: [] }] };

/** A response with the service's error body. */
export const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

/** A response whose body is a JSON object, described in words. */
export const objectResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { type: 'object' } } },
});

/** A required JSON request body of `schema`. */
export const jsonRequestBody = (schema: object) => ({
  requestBody: { required: true, content: { 'application/json': { schema } } },
});
