import { join } from 'node:path';

/** The workflow entry file the bundler starts from (run from source through tsx). */
export const WORKFLOWS_PATH = join(__dirname, '..', 'workflows', 'index.ts');
