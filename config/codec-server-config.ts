import { z } from 'zod';
import type { CodecKeyRing } from '../codec/encryption-codec';
import { codecEnvProblems, codecEnvSchema, toCodecKeyRing } from './codec-config';
import { envBool, envInt, envNonEmpty } from './env-schema';
import { loadConfig } from './load-config';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

const codecServerEnvSchema = codecEnvSchema.extend({
  CODEC_SERVER_HOST: envNonEmpty.default('127.0.0.1'),
  CODEC_SERVER_PORT: envInt(1, 65_535).default(8234),
  CODEC_SERVER_ALLOWED_ORIGINS: envNonEmpty.default('http://127.0.0.1:8233,http://localhost:8233'),
  CODEC_SERVER_TOKENS: z.string().optional(),
  CODEC_SERVER_NAMESPACES: z.string().optional(),
  CODEC_SERVER_ENCODE: envBool.default(false),
});

export interface CodecServerConfig {
  codecKeys: CodecKeyRing;
  host: string;
  port: number;
  allowedOrigins: string[];
  tokens: string[];
  namespaces: string[];
  /** Serve `/encode` too (an encryption oracle: whoever passes it makes payloads the workers accept). */
  encode: boolean;
}

const list = (value: string | undefined) => (value ?? '').split(',').map((item) => item.trim()).filter(Boolean);

/**
 * The codec server's configuration, every problem at once. It decodes only, unless
 * CODEC_SERVER_ENCODE=true says otherwise; tokens are required off loopback and whenever it
 * encodes; a token list that is set but blank is refused rather than read as "no token".
 */
export function loadCodecServerConfig(env: NodeJS.ProcessEnv): CodecServerConfig {
  const parsed = loadConfig(codecServerEnvSchema, env, (config) => {
    const problems = codecEnvProblems(config);
    const tokens = list(config.CODEC_SERVER_TOKENS);
    if (config.CODEC_SERVER_TOKENS !== undefined && tokens.length === 0) {
      problems.push('CODEC_SERVER_TOKENS is set but holds no token (blank, or only commas): give at least one, or unset it on loopback');
    }
    if (tokens.length === 0 && !LOOPBACK.test(config.CODEC_SERVER_HOST)) {
      problems.push('CODEC_SERVER_TOKENS is required when CODEC_SERVER_HOST is not loopback: anyone who reaches it could decode history');
    }
    if (tokens.length === 0 && config.CODEC_SERVER_ENCODE) {
      problems.push('CODEC_SERVER_ENCODE=true needs CODEC_SERVER_TOKENS: /encode makes payloads the workers accept, so only operators may reach it');
    }
    return problems;
  });
  return {
    codecKeys: toCodecKeyRing(parsed),
    host: parsed.CODEC_SERVER_HOST,
    port: parsed.CODEC_SERVER_PORT,
    allowedOrigins: list(parsed.CODEC_SERVER_ALLOWED_ORIGINS),
    tokens: list(parsed.CODEC_SERVER_TOKENS),
    namespaces: list(parsed.CODEC_SERVER_NAMESPACES),
    encode: parsed.CODEC_SERVER_ENCODE,
  };
}
