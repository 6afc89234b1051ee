// ESLint flat config. Deliberately small: promise-safety rules everywhere, plus the Temporal
// workflow-sandbox rules for workflows/ (the same intent as the .eslintrc.js in
// temporalio/samples-typescript). No style or formatting rules beyond object-shorthand.
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const repoRoot = fileURLToPath(new URL('.', import.meta.url));

// Node built-ins the workflow bundler of @temporalio/worker 1.24 accepts (see `allowedBuiltinModules`
// in @temporalio/worker/lib/workflow/bundler.js). It swaps each for a sandbox stub that exports only
// a few names, so `url` and `util` are allowed just for those names. Every other built-in is dropped
// from the bundle and fails when the workflow runs.
const SANDBOX_BUILTIN_EXPORTS = {
  assert: null, // the whole module (the sandbox's global `assert`)
  url: ['URL', 'URLSearchParams'],
  util: ['TextEncoder', 'TextDecoder'],
};
const SANDBOX_MESSAGE =
  'Workflow code runs in the deterministic Temporal sandbox: no Node built-ins here. Do the I/O in an activity.';

const restrictedBuiltinPaths = builtinModules
  .filter((name) => !(name in SANDBOX_BUILTIN_EXPORTS))
  .map((name) => ({ name, message: SANDBOX_MESSAGE }));
const partlyAllowedBuiltinPaths = Object.entries(SANDBOX_BUILTIN_EXPORTS)
  .filter(([, names]) => names !== null)
  .flatMap(([name, names]) =>
    [name, `node:${name}`].map((spec) => ({
      name: spec,
      allowImportNames: names,
      message: `The workflow sandbox's '${name}' only provides ${names.join(', ')}.`,
    })),
  );

export default defineConfig(
  {
    // node_modules is ignored by default.
    ignores: ['dist/', '.stack/', 'bench-results/', 'coverage/'],
  },

  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      'object-shorthand': ['error', 'always'],
    },
  },

  {
    files: ['scripts/**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
  },

  // Typed rules for all TypeScript. Every .ts file must belong to tsconfig.json; scripts/*.ts (outside
  // its "include") are type-checked with the same compiler options.
  {
    files: ['**/*.ts', '**/*.mts', '**/*.cts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        projectService: {
          allowDefaultProject: ['scripts/*.ts'],
          defaultProject: 'tsconfig.json',
        },
        tsconfigRootDir: repoRoot,
      },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      // A promise nobody awaits loses its rejection (and, in workflows, its ordering). `void p`
      // is the accepted way to mark a deliberately detached promise.
      '@typescript-eslint/no-floating-promises': 'error',
      // Promises in conditions, spreads, and async callbacks where the caller ignores the result.
      // If fastify/commander handlers ever trip checksVoidReturn, scope an override to them
      // rather than turning it off everywhere.
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },

  // Workflow code is bundled into Temporal's deterministic sandbox.
  {
    files: ['workflows/**/*.ts', 'contracts/**/*.ts', 'domain/**/*.ts'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [...restrictedBuiltinPaths, ...partlyAllowedBuiltinPaths],
          patterns: [
            {
              regex: `^node:(?!(?:${Object.keys(SANDBOX_BUILTIN_EXPORTS).join('|')})$)`,
              caseSensitive: true,
              message: SANDBOX_MESSAGE,
            },
            {
              // The modules the workflow bundler refuses (its `disallowedModules`). Types are erased,
              // so `import type` from them is fine.
              regex: '^@temporalio/(?:worker|client|activity|testing|core-bridge|common/lib/internal-non-workflow)(?:/|$)',
              caseSensitive: true,
              allowTypeImports: true,
              message: 'This Temporal package cannot run inside the workflow sandbox; use @temporalio/workflow.',
            },
            {
              regex: '^(?:\\.\\./)+(?:activities|adapters)(?:/|$)',
              caseSensitive: true,
              allowTypeImports: true,
              message: "Workflows may only use activity and adapter types ('import type'); call activities through proxyActivities.",
            },
          ],
        },
      ],
      // Host globals that do not exist in the sandbox or that it replaces with throwing stubs.
      // setTimeout/clearTimeout (durable timers), Date and Math.random (replay-safe) are provided
      // by the SDK and stay allowed.
      'no-restricted-globals': [
        'error',
        ...['process', 'Buffer', 'require', '__dirname', '__filename'].map((name) => ({
          name,
          message: `'${name}' does not exist in the Temporal workflow sandbox.`,
        })),
        ...['setInterval', 'clearInterval', 'setImmediate', 'clearImmediate'].map((name) => ({
          name,
          message: `'${name}' does not exist in the Temporal workflow sandbox; use sleep() or setTimeout (a durable timer).`,
        })),
        ...['WeakRef', 'FinalizationRegistry'].map((name) => ({
          name,
          message: `'${name}' throws in workflows: garbage collection is not deterministic.`,
        })),
      ],
    },
  },
);
