#!/usr/bin/env node
// Prints the least-privilege `authorization { ... }` block of nats-server for dynamo-ts roles
// (the same rules the integration tests check; see docs/security.md). Needs a build (`npx tsc -b`).
//   node deploy/secure/nats-authorization.js --namespace dynamo-demo \
//     --user frontend:PASSWORD:frontend --user node1:PASSWORD:worker:node1 --user prefill1:PASSWORD:prefill:prefill1
'use strict';
const path = require('node:path');
const { natsAuthorizationConfig } = require(path.join(__dirname, '../../packages/runtime/dist/index.js'));

const args = process.argv.slice(2);
let namespace = 'dynamo-demo';
const users = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--namespace') namespace = args[++i];
  else if (a === '--user') {
    const [user, password, role, scope] = String(args[++i]).split(':');
    if (!user || !password || !role) {
      process.stderr.write('--user needs NAME:PASSWORD:ROLE[:SCOPE] (ROLE: frontend, worker, prefill)\n');
      process.exit(2);
    }
    users.push({ user, password, role, ...(scope ? { scope } : {}) });
  } else {
    process.stderr.write(`unknown argument ${a}\n`);
    process.exit(2);
  }
}
try {
  process.stdout.write(`${natsAuthorizationConfig(users, { namespace })}\n`);
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(2);
}
