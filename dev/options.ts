import { parseOptions, type OptionValues } from '../command-line/options';

/** `npm run dev -- …`: the dev stack's options, each written once. */
export const DEV_OPTIONS = {
  users: { flag: '--users <count>', description: 'users to seed in the Portal simulator', default: '5', number: true },
  once: { flag: '--once', description: 'run the demo backup, print its result and stop everything' },
  temporalPort: { flag: '--temporal-port <port>', description: 'Temporal gRPC port', default: '7233', number: true },
  uiPort: { flag: '--ui-port <port>', description: 'Temporal Web UI port', default: '8233', number: true },
  vaultPort: { flag: '--vault-port <port>', description: 'Vault port', default: '8200', number: true },
  kms: { flag: '--kms <provider>', description: 'the KMS the worker and webhook use: vault-transit, or aws-kms (local-kms, a local AWS KMS)', default: 'vault-transit' },
  kmsPort: { flag: '--kms-port <port>', description: 'local-kms port (with --kms aws-kms)', default: '8210', number: true },
  simulatorPort: { flag: '--simulator-port <port>', description: 'Portal simulator port', default: '4100', number: true },
  codecPort: { flag: '--codec-port <port>', description: 'codec server port (the Web UI decodes payloads through it)', default: '8234', number: true },
  cluster: {
    flag: '--cluster',
    description: 'Temporal as a cluster: temporal-server frontend, history, matching and worker processes on PostgreSQL (instead of the dev server)',
  },
  selfManaged: { flag: '--self-managed', description: 'Self-Managed Backups: PostgreSQL, the custodian-share webhook, and the simulator delivering to it' },
  webhookPort: { flag: '--webhook-port <port>', description: 'custodian-share webhook port (with --self-managed)', default: '4300', number: true },
  apiPort: { flag: '--api-port <port>', description: 'HTTP API port', default: '8080', number: true },
  metricsPort: { flag: '--metrics-port <port>', description: "the worker's Prometheus endpoint for the service's metrics", default: '9465', number: true },
  temporalMetricsPort: {
    flag: '--temporal-metrics-port <port>',
    description: "the worker's Prometheus endpoint for the Temporal runtime's metrics",
    default: '9464',
    number: true,
  },
} as const;

export type DevOptions = OptionValues<typeof DEV_OPTIONS>;

export function parseDevOptions(argv: readonly string[] = process.argv): DevOptions {
  return parseOptions('dev', DEV_OPTIONS, argv);
}

/** The ports the stack takes, by the name its `--<name>-port` option has (the webhook and local-kms only when used). */
export function devPorts(opts: DevOptions) {
  return {
    temporal: opts.temporalPort,
    ui: opts.uiPort,
    codec: opts.codecPort,
    vault: opts.vaultPort,
    simulator: opts.simulatorPort,
    api: opts.apiPort,
    metrics: opts.metricsPort,
    temporalMetrics: opts.temporalMetricsPort,
    ...(opts.selfManaged ? { webhook: opts.webhookPort } : {}),
    ...(opts.kms === 'aws-kms' ? { kms: opts.kmsPort } : {}),
  };
}

export type DevPorts = ReturnType<typeof devPorts>;
