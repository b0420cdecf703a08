import { defineConfig } from 'prisma/config';

// Only the Prisma CLI reads this file. The service itself never does: it gets
// its connection from src/config, which honours the spec's DATABASE_* variables.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env['DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres' },
});
