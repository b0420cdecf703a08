// Writes the REST shim's OpenAPI document (what GET /openapi.json serves) to stdout, for
// `npm run lint:openapi` and for anyone who wants it without starting a server.
import { buildOpenApiDocument } from '../src/http/openapi.js';
import packageJson from '../package.json' with { type: 'json' };

process.stdout.write(`${JSON.stringify(buildOpenApiDocument(packageJson.version), null, 2)}\n`);
