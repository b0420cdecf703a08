#!/usr/bin/env -S node --max-semi-space-size=64
// The package's one entry: runs the TypeScript sources through tsx, so there is no build step to forget.
// The shebang's Node flags are bin/node-flags.mjs's (why there).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
