// The Node flags every auditgraph process runs with. Written out again where a launcher cannot
// import this file (the shebang of bin/auditgraph.mjs, `npm start`, the Dockerfile's ENTRYPOINT);
// test/config/node-flags.test.ts keeps those copies equal to this one.
//
// --max-semi-space-size=64: the worker allocates tens of MiB per batch of 1,000 events (parsed
// entries, canonical JSON, the insert's parameters, the live-feed announcement), nearly all of it
// dead once the batch commits. With V8's default young generation (16 MiB semi-spaces) much of it
// was copied and promoted before it died; at 64 MiB it dies young. Measured with bench/ingest
// (empty table, three runs each, alternating): garbage collection 1.7 s → 0.7 s of 7.3 s busy,
// worker CPU 72 % → 61 %, 35,300 → 37,800 events/s. 32 MiB measured the same as the default. The
// cost is memory: the young generation may grow to 3 × 64 MiB under load.
export const NODE_FLAGS = ['--max-semi-space-size=64'];
