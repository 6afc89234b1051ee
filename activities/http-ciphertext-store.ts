import axios, { AxiosError, type AxiosInstance } from 'axios';
import { z } from 'zod';
import { CURVES, type Curve } from '../domain/curves';
import {
  CiphertextConflictError,
  CiphertextNotFoundError,
  CiphertextStoreRequestError,
  CiphertextStoreUnavailableError,
} from '../domain/errors';
import { redactSecrets } from '../domain/redact';
import type { CiphertextStore, PutOptions, StoreContext, StoredCiphertext } from './ciphertext-store';
import { isTransientHttpStatus } from './http-status';
import { describeZodError } from './response-validation';

export interface HttpCiphertextStoreConfig {
  /** `POST` target, a template with `{userId}`, e.g. https://backend.example/users/{userId}/user-backup-share */
  writeUrl: string;
  /** `GET` read-back, a template with `{userId}` (and optionally `{pairId}`); default: writeUrl. */
  readUrl: string;
  authHeader?: { name: string; value: string };
  timeoutMs: number;
}

/** The body field Portal's example backend uses for each curve. */
const FIELD: Record<Curve, 'secp256k1Ciphertext' | 'ed25519Ciphertext'> = {
  SECP256K1: 'secp256k1Ciphertext',
  ED25519: 'ed25519Ciphertext',
};

const readSchema = z.object({
  data: z.object({ secp256k1Ciphertext: z.string().min(1), ed25519Ciphertext: z.string().min(1) }),
  backupSharePairIds: z.object({ SECP256K1: z.string(), ED25519: z.string() }).partial().optional(),
});
type StoredRecord = z.infer<typeof readSchema>;

/**
 * The company's own HTTP endpoint, in the shape of Portal's example backend:
 * `POST {writeUrl}` with `{data: {secp256k1Ciphertext, ed25519Ciphertext}}` (plus
 * `backupSharePairIds`, which such a backend may ignore), read back with `GET {readUrl}` → the same
 * shape. That backend keeps one record per user (the newest backup), so write-once is per pair:
 * a record naming the same pair with another ciphertext is a conflict; a record of an older
 * backup (other pair ids) is replaced, as that backend intends. A 409 from the endpoint is a
 * conflict too.
 */
export class HttpCiphertextStore implements CiphertextStore {
  readonly kind = 'http';
  private readonly http: AxiosInstance;

  constructor(private readonly config: HttpCiphertextStoreConfig) {
    this.http = axios.create({ timeout: config.timeoutMs, maxRedirects: 0, maxContentLength: 1024 * 1024 });
  }

  async put(context: StoreContext, ciphertexts: StoredCiphertext[], options: PutOptions): Promise<void> {
    if (!options.freshPairs) {
      const existing = await this.read(context, ciphertexts[0]!.pairId);
      if (existing && ciphertexts.every((entry) => this.sameEntry(existing, entry))) return;
      for (const entry of ciphertexts) {
        if (existing?.backupSharePairIds?.[entry.curve] === entry.pairId && existing.data[FIELD[entry.curve]] !== entry.ciphertext) {
          throw new CiphertextConflictError(`the company store already holds a different ciphertext for pair ${entry.pairId}; it was not overwritten`);
        }
      }
    }
    const data = Object.fromEntries(ciphertexts.map((entry) => [FIELD[entry.curve], entry.ciphertext]));
    const backupSharePairIds = Object.fromEntries(ciphertexts.map((entry) => [entry.curve, entry.pairId]));
    try {
      await this.http.post(this.url(this.config.writeUrl, context, ciphertexts[0]!.pairId), { data, backupSharePairIds }, { headers: this.headers() });
    } catch (error) {
      throw this.classify(error, 'storing', context);
    }
  }

  async get(context: StoreContext, pairId: string, curve: Curve): Promise<string> {
    const record = await this.read(context, pairId);
    const recordPair = record?.backupSharePairIds?.[curve];
    if (!record || (recordPair !== undefined && recordPair !== pairId)) {
      throw new CiphertextNotFoundError(`the company store has no ciphertext for pair ${pairId} of user ${context.userId}`);
    }
    return record.data[FIELD[curve]];
  }

  private sameEntry(record: StoredRecord, entry: StoredCiphertext): boolean {
    const recordPair = record.backupSharePairIds?.[entry.curve];
    return record.data[FIELD[entry.curve]] === entry.ciphertext && (recordPair === undefined || recordPair === entry.pairId);
  }

  private async read(context: StoreContext, pairId: string): Promise<StoredRecord | undefined> {
    let body: unknown;
    try {
      body = (await this.http.get(this.url(this.config.readUrl, context, pairId), { headers: this.headers() })).data;
    } catch (error) {
      if (error instanceof AxiosError && error.response?.status === 404) return undefined;
      throw this.classify(error, 'reading', context);
    }
    if (typeof body === 'string') {
      throw new CiphertextStoreUnavailableError(`the company store answered a read for user ${context.userId} with a body that is not JSON; will retry`);
    }
    const parsed = readSchema.safeParse(body);
    if (!parsed.success) {
      throw new CiphertextStoreRequestError(`the company store's read-back for user ${context.userId} is not {data: {${CURVES.map((c) => FIELD[c]).join(', ')}}}: ${describeZodError(parsed.error)}`);
    }
    return parsed.data;
  }

  private url(template: string, context: StoreContext, pairId: string): string {
    return template.replace('{userId}', encodeURIComponent(context.userId)).replace('{pairId}', encodeURIComponent(pairId));
  }

  private headers(): Record<string, string> {
    return this.config.authHeader ? { [this.config.authHeader.name]: this.config.authHeader.value } : {};
  }

  private classify(error: unknown, doing: string, context: StoreContext): Error {
    const status = error instanceof AxiosError ? error.response?.status : undefined;
    const what = `${doing} the ciphertexts of user ${context.userId} at the company store`;
    if (status === 409) return new CiphertextConflictError(`${what} was refused with 409: the pair already holds another ciphertext`);
    if (isTransientHttpStatus(status)) {
      const cause = error instanceof AxiosError ? (status ?? error.code ?? 'network error') : redactSecrets(String(error));
      return new CiphertextStoreUnavailableError(`${what} failed (${cause}); will retry`);
    }
    return new CiphertextStoreRequestError(`${what} was refused with ${status}: check CIPHERTEXT_HTTP_WRITE_URL, CIPHERTEXT_HTTP_READ_URL and CIPHERTEXT_HTTP_AUTH_HEADER`);
  }
}
