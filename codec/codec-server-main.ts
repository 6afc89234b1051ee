import { z } from 'zod';
import { loadOrExit } from '../config/load-or-exit';
import { codecEnvProblems, codecEnvSchema, toCodecKeyRing } from '../config/codec-config';
import { envInt, envNonEmpty } from '../config/env-schema';
import { loadConfig } from '../config/load-config';
import { createCodecServer } from './codec-server';
import { EncryptionCodec } from './encryption-codec';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

const codecServerEnvSchema = codecEnvSchema.extend({
  CODEC_SERVER_HOST: envNonEmpty.default('127.0.0.1'),
  CODEC_SERVER_PORT: envInt(1, 65_535).default(8234),
  CODEC_SERVER_ALLOWED_ORIGINS: envNonEmpty.default('http://127.0.0.1:8233,http://localhost:8233'),
  CODEC_SERVER_TOKENS: z.string().optional(),
  CODEC_SERVER_NAMESPACES: z.string().optional(),
});

/**
 * `npm run codec-server`: the payload codec over HTTP for the Temporal Web UI and CLI. Off
 * loopback it requires bearer tokens (CODEC_SERVER_TOKENS), and belongs behind https: Temporal's
 * UI passes its access token only to an https codec endpoint.
 */
async function main(): Promise<void> {
  const env = loadOrExit('mpc-backup codec server', () =>
    loadConfig(codecServerEnvSchema, process.env, (parsed) => {
      const problems = codecEnvProblems(parsed);
      if (!LOOPBACK.test(parsed.CODEC_SERVER_HOST) && !parsed.CODEC_SERVER_TOKENS) {
        problems.push('CODEC_SERVER_TOKENS is required when CODEC_SERVER_HOST is not loopback: anyone who reaches it could decode history');
      }
      return problems;
    }),
  );
  const list = (value: string | undefined) => (value ?? '').split(',').map((item) => item.trim()).filter(Boolean);
  const app = createCodecServer({
    codec: new EncryptionCodec(toCodecKeyRing(env)),
    allowedOrigins: list(env.CODEC_SERVER_ALLOWED_ORIGINS),
    tokens: list(env.CODEC_SERVER_TOKENS),
    namespaces: list(env.CODEC_SERVER_NAMESPACES),
  });
  const address = await app.listen({ host: env.CODEC_SERVER_HOST, port: env.CODEC_SERVER_PORT });
  process.stdout.write(`codec server on ${address} for ${env.CODEC_SERVER_ALLOWED_ORIGINS}\n`);
  const stop = () => void app.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`mpc-backup codec server failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
