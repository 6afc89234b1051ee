import { loadCodecServerConfig } from '../config/codec-server-config';
import { loadOrExit } from '../config/load-or-exit';
import { createCodecServer } from './codec-server';
import { EncryptionCodec } from './encryption-codec';

/**
 * `npm run codec-server`: the payload codec over HTTP for the Temporal Web UI and CLI. It decodes
 * only, unless CODEC_SERVER_ENCODE=true (with tokens); off loopback it requires bearer tokens
 * (CODEC_SERVER_TOKENS), and belongs behind https: Temporal's UI passes its access token only to
 * an https codec endpoint.
 */
async function main(): Promise<void> {
  const config = loadOrExit('mpc-backup codec server', () => loadCodecServerConfig(process.env));
  const app = createCodecServer({
    codec: new EncryptionCodec(config.codecKeys),
    allowedOrigins: config.allowedOrigins,
    tokens: config.tokens,
    namespaces: config.namespaces,
    encode: config.encode,
  });
  const address = await app.listen({ host: config.host, port: config.port });
  process.stdout.write(`codec server on ${address} for ${config.allowedOrigins.join(',')} (${config.encode ? 'decode and encode' : 'decode only'})\n`);
  const stop = () => void app.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`mpc-backup codec server failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
