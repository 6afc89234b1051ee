import axios, { AxiosError, type AxiosInstance } from 'axios';
import { z } from 'zod';
import { CURVES, type Curve } from '../../domain/curves';
import {
  CiphertextConflictError,
  CiphertextNotFoundError,
  CiphertextReplaceUnsupportedError,
  CiphertextStoreRequestError,
  CiphertextStoreUnavailableError,
} from '../../domain/errors';
import { redactSecrets } from '../../domain/redact';
import type { CiphertextStore, PutOptions, PutResult, ReplaceOutcome, StoreContext, StoredCiphertext } from './ciphertext-store';
import { isTransientHttpStatus } from '../http/http-status';
import { describeZodError } from '../http/response-validation';

export interface HttpCiphertextStoreConfig {
  /** `POST` target, a template with `{userId}`, e.g. https://backend.example/users/{userId}/user-backup-share */
  writeUrl: string;
  /** `GET` read-back, a template with `{userId}` (and optionally `{pairId}`); default: writeUrl. */
  readUrl: string;
  authHeader?: { name: string; value: string };
  timeoutMs: number;
}

/** Errors without an HTTP answer that are worth another try. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_NETWORK']);

/** The body field Portal's example backend uses for each curve. */
const FIELD: Record<Curve, 'secp256k1Ciphertext' | 'ed25519Ciphertext'> = {
  SECP256K1: 'secp256k1Ciphertext',
  ED25519: 'ed25519Ciphertext',
};

const readSchema = z.object({
  data: z
    .object({ secp256k1Ciphertext: z.string().min(1), ed25519Ciphertext: z.string().min(1) })
    .partial()
    .refine((data) => data.secp256k1Ciphertext !== undefined || data.ed25519Ciphertext !== undefined, 'holds no ciphertext'),
  backupSharePairIds: z.object({ SECP256K1: z.string(), ED25519: z.string() }).partial().optional(),
});
type StoredRecord = z.infer<typeof readSchema>;

/**
 * The company's own HTTP endpoint. Two layouts:
 * - per pair (the URL templates contain `{pairId}`): one record per backup share pair, written
 *   once; nothing of an older backup is ever touched. The safe layout, and the one to use.
 * - per user, exactly Portal's example backend (templates without `{pairId}`, allowed only with
 *   CIPHERTEXT_HTTP_ONE_RECORD_PER_USER=true): the new backup's ciphertexts replace the user's
 *   record at step 3, before step 4 marks them; if that backup then never completes (parked and
 *   abandoned), the user's last completed backup has lost its ciphertext until another completes.
 * In the per-user layout it behaves as Portal's example backend does:
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

  private get perPair(): boolean {
    return this.config.writeUrl.includes('{pairId}');
  }

  /**
   * Key rotation needs the per-pair layout. In the per-user layout a record holds the newest
   * backup only, and the endpoint has no conditional write: a rewrap written just after a new
   * backup replaced the record would put the old backup back over it.
   */
  get replaceUnsupported(): string | undefined {
    if (this.perPair) return undefined;
    return (
      'the company endpoint keeps one record per user (CIPHERTEXT_HTTP_ONE_RECORD_PER_USER), and has no conditional write: ' +
      'a rewrap could overwrite a newer backup. Key rotation needs one record per pair ({pairId} in CIPHERTEXT_HTTP_WRITE_URL and CIPHERTEXT_HTTP_READ_URL)'
    );
  }

  /**
   * Key rotation, per-pair layout only: reads the pair's record and writes the new ciphertext only
   * if the record still holds `expectedOld`. The endpoint offers no compare-and-set, so this is read
   * then write: a pair's record is written by that pair's backup (once, before its ciphertext is
   * stored) and by the rotation, which defers users whose pre-rotation backup still runs.
   */
  async replace(context: StoreContext, next: StoredCiphertext, expectedOld: string): Promise<ReplaceOutcome> {
    const unsupported = this.replaceUnsupported;
    if (unsupported) throw new CiphertextReplaceUnsupportedError(unsupported);
    const record = await this.read(context, next.pairId);
    const recordPair = record?.backupSharePairIds?.[next.curve];
    const stored = record?.data[FIELD[next.curve]];
    if (stored === undefined || (recordPair !== undefined && recordPair !== next.pairId)) return 'absent';
    if (stored === next.ciphertext) return 'replaced';
    if (stored !== expectedOld) return 'changed';
    const body = { data: { [FIELD[next.curve]]: next.ciphertext }, backupSharePairIds: { [next.curve]: next.pairId } };
    try {
      await this.http.post(this.url(this.config.writeUrl, context, next.pairId), body, { headers: this.headers() });
    } catch (error) {
      throw this.classify(error, 'replacing', context);
    }
    return 'replaced';
  }

  async put(context: StoreContext, ciphertexts: StoredCiphertext[], options: PutOptions): Promise<PutResult> {
    const records = this.perPair ? ciphertexts.map((entry) => [entry]) : [ciphertexts];
    const outcomes = await Promise.all(records.map(async (entries) => ({ entries, unchanged: await this.putRecords(context, entries, options) })));
    return { alreadyStored: outcomes.filter((o) => o.unchanged).flatMap((o) => o.entries.map((entry) => entry.pairId)) };
  }

  /** Writes one record; true when it already held exactly these ciphertexts (nothing written). */
  private async putRecords(context: StoreContext, ciphertexts: StoredCiphertext[], options: PutOptions): Promise<boolean> {
    if (!options.freshPairs) {
      const existing = await this.read(context, ciphertexts[0]!.pairId);
      if (existing && ciphertexts.every((entry) => this.sameEntry(existing, entry))) return true;
      for (const entry of ciphertexts) {
        const samePair = this.perPair || existing?.backupSharePairIds?.[entry.curve] === entry.pairId;
        const stored = existing?.data[FIELD[entry.curve]];
        if (samePair && stored !== undefined && stored !== entry.ciphertext) {
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
    return false;
  }

  async get(context: StoreContext, pairId: string, curve: Curve): Promise<string> {
    const record = await this.read(context, pairId);
    const recordPair = record?.backupSharePairIds?.[curve];
    const stored = record?.data[FIELD[curve]];
    if (stored === undefined || (recordPair !== undefined && recordPair !== pairId)) {
      throw new CiphertextNotFoundError(`the company store has no ciphertext for pair ${pairId} of user ${context.userId}`);
    }
    return stored;
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
    // No answer at all is transient only for network trouble and timeouts; an oversized body, a TLS
    // or certificate error or a bug would fail the same way forever.
    const code = error instanceof AxiosError ? error.code : undefined;
    if (status === undefined && !(code && NETWORK_CODES.has(code))) {
      return new CiphertextStoreRequestError(`${what} failed without an answer (${code ?? (error as Error)?.name}): check the endpoint's URL, TLS and response size`);
    }
    if (isTransientHttpStatus(status)) {
      const cause = error instanceof AxiosError ? (status ?? error.code ?? 'network error') : redactSecrets(String(error));
      return new CiphertextStoreUnavailableError(`${what} failed (${cause}); will retry`);
    }
    return new CiphertextStoreRequestError(`${what} was refused with ${status}: check CIPHERTEXT_HTTP_WRITE_URL, CIPHERTEXT_HTTP_READ_URL and CIPHERTEXT_HTTP_AUTH_HEADER`);
  }
}
