import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { envNonEmpty } from './env-schema';

/**
 * Worker Versioning (docs/changing-workflows.md): each worker polls as one version of a Worker
 * Deployment, `TEMPORAL_DEPLOYMENT_NAME` (default `mpc-backup`) and `TEMPORAL_BUILD_ID` (default
 * `<package version>-<short commit>`). `TEMPORAL_WORKER_VERSIONING=off` runs unversioned, as every
 * worker did before: for the transition, and for stacks that run one build and never deploy a
 * second (the dev stack, docker-compose, the tests, chaos and bench).
 *
 * The deployment name when TEMPORAL_DEPLOYMENT_NAME is unset: when TEMPORAL_DEPLOYMENT_NAME is unset. */
export const DEFAULT_DEPLOYMENT_NAME = 'mpc-backup';

/** The server keeps versions as `<deployment>:<build>` (and `.` in older APIs): neither may be in a deployment name. */
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,200}$/;
const BUILD_ID_PATTERN = /^(?!__unversioned__$)[A-Za-z0-9._+-]{1,255}$/;
const deploymentName = envNonEmpty.regex(NAME_PATTERN, "must be letters, digits, '-' or '_' (no '.' or ':', which the server uses to join deployment and build id)");

export const versioningEnvSchema = z.object({
  TEMPORAL_WORKER_VERSIONING: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
  TEMPORAL_DEPLOYMENT_NAME: deploymentName.default(DEFAULT_DEPLOYMENT_NAME),
  TEMPORAL_BUILD_ID: envNonEmpty.regex(BUILD_ID_PATTERN, "must be letters, digits, '.', '_', '+' or '-' (at most 255; no ':'), e.g. 0.2.0-3fa9c1e").optional(),
});

export type VersioningEnv = z.infer<typeof versioningEnvSchema>;

export type WorkerVersioningConfig = { enabled: false } | { enabled: true; deploymentName: string; buildId: string };

const ROOT = join(__dirname, '..');
let derivedBuildId: { value?: string; problem?: string } | undefined;

/**
 * `<package version>-<short commit>` of the code this process runs (package.json, `git rev-parse`);
 * without a git checkout (an image built without .git) there is no default: set TEMPORAL_BUILD_ID.
 */
export function defaultBuildId(): { value?: string; problem?: string } {
  if (derivedBuildId) return derivedBuildId;
  try {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short=10', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    derivedBuildId = { value: `${version}-${commit}` };
  } catch {
    derivedBuildId = {
      problem: 'TEMPORAL_BUILD_ID is required here: there is no git checkout to take the commit from (set it to the release, e.g. 0.2.0-3fa9c1e, the same on every worker of one build)',
    };
  }
  return derivedBuildId;
}

export function versioningEnvProblems(env: VersioningEnv): string[] {
  if (env.TEMPORAL_WORKER_VERSIONING === 'off' || env.TEMPORAL_BUILD_ID !== undefined) return [];
  const derived = defaultBuildId();
  return derived.problem ? [derived.problem] : [];
}

export function toVersioningConfig(env: VersioningEnv): WorkerVersioningConfig {
  if (env.TEMPORAL_WORKER_VERSIONING === 'off') return { enabled: false };
  return { enabled: true, deploymentName: env.TEMPORAL_DEPLOYMENT_NAME, buildId: env.TEMPORAL_BUILD_ID ?? defaultBuildId().value! };
}

/** The deployment name a client (the deploy commands) steers: TEMPORAL_DEPLOYMENT_NAME or the default. */
export const deploymentNameEnvSchema = z.object({
  TEMPORAL_DEPLOYMENT_NAME: deploymentName.default(DEFAULT_DEPLOYMENT_NAME),
});
