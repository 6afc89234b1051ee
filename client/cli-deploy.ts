import type { Command } from 'commander';
import { backupDataConverter } from '../codec/data-converter';
import { loadConfig } from '../config/load-config';
import { deploymentNameEnvSchema } from '../config/versioning-config';
import { WORKFLOWS_PATH } from '../worker/workflows-path';
import { print } from './cli-output';
import { loadClientConfig } from './config';
import { DeployClient, type ReplayCode } from './deploy-client';
import { DeployMoveIncompleteError, DeployOptionsError } from './deploy-errors';
import type { WithClient } from './cli-drill';

interface DeploymentFlag {
  deployment?: string;
}

function deploymentName(flags: DeploymentFlag): string {
  return flags.deployment ?? loadConfig(deploymentNameEnvSchema, process.env, () => []).TEMPORAL_DEPLOYMENT_NAME;
}

function percentage(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number)) throw new DeployOptionsError(`--ramp must be a number (got ${value})`);
  return number;
}

/**
 * `backup deploy status|promote|move-parked|retire`: the deploy procedure of Worker Versioning
 * (docs/changing-workflows.md). The deployment is TEMPORAL_DEPLOYMENT_NAME (default mpc-backup),
 * or --deployment.
 */
export function registerDeployCommands(program: Command, withClient: WithClient): Command {
  const deploy = program
    .command('deploy')
    .description('deploy a new build with Worker Versioning: status, promote (or ramp), move parked runs after a replay check, retire the old build')
    .option('--deployment <name>', 'the Worker Deployment (default TEMPORAL_DEPLOYMENT_NAME, or mpc-backup)');
  const withDeploy = (command: Command, action: (deploy: DeployClient) => Promise<void>) =>
    withClient((client) => action(new DeployClient(client.temporal, deploymentName(command.optsWithGlobals<DeploymentFlag>()), client.taskQueue)));

  deploy
    .command('status')
    .description('the versions: current and ramping, drainage, open runs pinned to each')
    .action((_options: unknown, command: Command) => withDeploy(command, async (client) => print(await client.status())));

  deploy
    .command('promote')
    .requiredOption('--build-id <id>', 'the build to send new runs to (its workers must be polling)')
    .option('--ramp <percent>', 'send only this share of new runs to it (0 < N < 100); without it the build becomes current')
    .option('--bundle <path>', "the build's workflow bundle, to replay the unversioned runs that would move to it (default: this checkout's workflow code)")
    .description('make a build current (or ramping): new backups start on it; runs already pinned stay where they are')
    .action((options: { buildId: string; ramp?: string; bundle?: string }, command: Command) =>
      withDeploy(command, async (client) => {
        const ramp = percentage(options.ramp);
        const code: ReplayCode = options.bundle ? { bundlePath: options.bundle } : { workflowsPath: WORKFLOWS_PATH };
        const replay = { code, dataConverter: backupDataConverter(loadClientConfig().codecKeys, { worker: true }) };
        print(await client.promote(options.buildId, { ...(ramp === undefined ? {} : { rampPercentage: ramp }), replay }));
      }),
    );

  deploy
    .command('move-parked')
    .requiredOption('--from <buildId>', 'the old build the runs are pinned to')
    .requiredOption('--to <buildId>', 'the build to move them to')
    .option('--bundle <path>', "the new build's workflow bundle (default: bundle the workflow code of this checkout, which should be the new build's)")
    .option('--workflow-id <id...>', 'only these runs')
    .option('--dry-run', 'replay and report, move nothing')
    .description("move the parked runs (NEEDS_ATTENTION) pinned to an old build onto a new one: each only if its history replays against the new build's code")
    .action((options: { from: string; to: string; bundle?: string; workflowId?: string[]; dryRun?: boolean }, command: Command) =>
      withDeploy(command, async (client) => {
        const code: ReplayCode = options.bundle ? { bundlePath: options.bundle } : { workflowsPath: WORKFLOWS_PATH };
        const report = await client.moveParked({
          from: options.from,
          to: options.to,
          code,
          dataConverter: backupDataConverter(loadClientConfig().codecKeys, { worker: true }),
          ...(options.dryRun ? { dryRun: true } : {}),
          ...(options.workflowId ? { workflowIds: options.workflowId } : {}),
        });
        print({ ...report, refused: report.refused.map((error) => ({ workflowId: error.workflowId, runId: error.runId, workflowType: error.workflowType, reason: error.message })) });
        if (report.refused.length > 0) throw new DeployMoveIncompleteError(report.refused);
      }),
    );

  deploy
    .command('retire')
    .requiredOption('--build-id <id>', 'the old build to delete from the deployment')
    .description('delete a build that is drained (no open runs pinned to it) and whose workers are stopped')
    .action((options: { buildId: string }, command: Command) =>
      withDeploy(command, async (client) => {
        await client.retire(options.buildId);
        print({ retired: options.buildId, deployment: client.deploymentName });
      }),
    );
  return deploy;
}
