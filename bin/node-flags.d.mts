/** The Node flags every auditgraph process runs with (bin/node-flags.mjs says why). */
export declare const NODE_FLAGS: readonly string[];
