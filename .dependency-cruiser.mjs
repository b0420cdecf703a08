/**
 * The floors of `src/`, lowest first: a module may import from its own floor or
 * a lower one, never a higher one, and no import circle is allowed anywhere.
 * Data flows one way (front door → ingest → queue → worker → store → bus →
 * subscribers); the vocabulary every layer shares sits at the bottom.
 * `test/architecture/floors.test.ts` runs this configuration and names each
 * offending import; `npx depcruise src` prints the same.
 */
export const FLOORS = [
  {
    name: 'foundation',
    path: '^src/(errors|validation|failure-class|to-app-error)\\.ts$',
    job: 'the error family and its one mapping, failure classification, shared zod pieces',
  },
  {
    name: 'config',
    path: '^src/config/',
    job: 'environment → validated Config, the only reader of process.env',
  },
  {
    name: 'events',
    path: '^src/events/',
    job: 'the vocabulary: event types, catalog, request and queue message contracts, stored-event and query types',
  },
  { name: 'math', path: '^src/math/', job: 'pure math: mergeable histograms and percentiles' },
  { name: 'observability', path: '^src/observability/', job: 'logging and Prometheus metrics' },
  {
    name: 'integrity',
    path: '^src/integrity/',
    job: 'tamper evidence: leaves, Merkle tree, checkpoints, verification over a read port',
  },
  { name: 'store', path: '^src/store/', job: 'the only code that talks to the database' },
  { name: 'queue', path: '^src/queue/', job: 'the EventQueue port and its adapters' },
  { name: 'security', path: '^src/security/', job: 'API keys, authenticate(), rate limits' },
  { name: 'query', path: '^src/query/', job: 'reading events back: filters, cursors' },
  { name: 'analytics', path: '^src/analytics/', job: 'analytics over the rollups, model prices' },
  { name: 'live', path: '^src/live/', job: 'the live feed: event bus, gap-free feed, fan-out' },
  { name: 'ingest', path: '^src/ingest/', job: 'door checks and the ingest service every front door calls' },
  { name: 'worker', path: '^src/worker/', job: 'queue → store: batches, retries, dead letters' },
  { name: 'http', path: '^src/http/', job: 'the REST shim, operational routes, OpenAPI' },
  {
    name: 'graphql',
    path: '^src/graphql/',
    job: 'SDL, resolvers, limits, Apollo Server and graphql-ws adapters',
  },
  { name: 'app', path: '^src/(app/|cli/|cli\\.ts$)', job: 'composition roots and the auditgraph command' },
];

const alternatives = (floors) => `(${floors.map((floor) => floor.path.slice(1)).join('|')})`;

export default {
  forbidden: [
    ...FLOORS.slice(0, -1).map((floor, index) => ({
      name: `${floor.name}-imports-up`,
      comment: `${floor.name} may import only from its own floor or lower ones (see FLOORS in .dependency-cruiser.mjs)`,
      severity: 'error',
      from: { path: floor.path },
      to: { path: `^${alternatives(FLOORS.slice(index + 1))}` },
    })),
    {
      name: 'no-circular',
      comment: 'an import circle: the modules cannot be read (or loaded) one after the other',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'unplaced',
      comment: 'a module of src/ outside every floor: add its folder to FLOORS',
      severity: 'error',
      from: { path: '^src/', pathNot: `^${alternatives(FLOORS)}|^src/(store|graphql)/generated/` },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^src/(store|graphql)/generated/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
