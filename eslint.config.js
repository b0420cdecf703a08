import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'src/store/generated/',
      'src/graphql/generated/',
      'coverage/',
      '.auditgraph-data/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '**/store/generated/**',
                '@prisma/*',
                'pg',
                '@electric-sql/pglite',
                'pglite-prisma-adapter',
              ],
              message: 'Only src/store talks to the database.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/store/**', 'test/**', 'bench/**', 'scripts/**', 'prisma.config.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['bin/**/*.mjs', 'scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
