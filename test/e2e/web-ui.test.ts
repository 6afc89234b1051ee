import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Locator, type Page, type Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { leaksIn, secretsOf } from '../../chaos/secret-scan';
import { createCodecServer } from '../../codec/codec-server';
import { EncryptionCodec } from '../../codec/encryption-codec';
import { toCodecKeyRing } from '../../config/codec-config';
import { freePort } from '../../stack/free-port';
import { startTemporalDevServer, type TemporalDevServer } from '../../stack/temporal-dev-server';
import { chromiumBinary } from '../support/browser';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';

/**
 * The operators' console in a real browser: Debian's Chromium (scripts/tool-chromium.sh) driven by
 * playwright-core against a Temporal dev server of this file's own, started with its Web UI and
 * `--ui-codec-endpoint` pointing at the real codec server. The shared suite server stays headless.
 * Screenshots of every page visited are kept in .stack/web-ui/.
 */
const SHOTS = join(__dirname, '..', '..', '.stack', 'web-ui');
const NAMESPACE = 'default';
const PARKED_QUERY = 'BackupStatus = "NEEDS_ATTENTION"';

let env: BackupTestEnv;
let codec: FastifyInstance;
let codecUrl: string;
let temporal: TemporalDevServer;
let browser: Browser;
let ui: string;

beforeAll(async () => {
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  const uiPort = await freePort();
  ui = `http://127.0.0.1:${uiPort}`;
  // As `npm run dev` runs it: loopback, no token (the UI sends its access token to https endpoints only).
  codec = createCodecServer({
    codec: new EncryptionCodec(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: inject('codecKeys') })),
    allowedOrigins: [ui],
    tokens: [],
  });
  codecUrl = await codec.listen({ host: '127.0.0.1', port: 0 });
  const executablePath = chromiumBinary();
  [temporal, browser] = await Promise.all([
    startTemporalDevServer({ logFile: join(inject('runDir'), 'temporal-web-ui.log'), uiPort, uiCodecEndpoint: codecUrl }),
    chromium.launch({ executablePath, headless: true }),
  ]);
  env = await createBackupTestEnv({ temporalAddress: temporal.address });
  await env.startWorker();
});
afterAll(async () => {
  await browser?.close();
  await env?.close();
  await temporal?.stop();
  await codec?.close();
});

/** What the browser showed: each page's HTML and text, and every answer the codec server gave it. */
interface Seen {
  pages: { name: string; url: string; html: string; text: string }[];
  codecAnswers: { url: string; status: number; body: string }[];
  pending: Promise<void>[];
}

function watchCodecAnswers(page: Page, seen: Seen): void {
  page.on('response', (response: Response) => {
    if (!response.url().startsWith(`${codecUrl}/`) || response.request().method() !== 'POST') return;
    const answer = { url: response.url(), status: response.status(), body: '' };
    seen.codecAnswers.push(answer);
    seen.pending.push(
      response.text().then(
        (body) => void (answer.body = body),
        (error: unknown) => void (answer.body = `(body not read: ${String(error)})`),
      ),
    );
  });
}

/** The payloads' data of the codec server's answers, as text (what the UI then renders). */
function decodedPayloads(seen: Seen): string[] {
  return seen.codecAnswers.flatMap(({ url, status, body }) => {
    expect(status, `the codec server's answer to ${url}: ${body.slice(0, 200)}`).toBe(200);
    const parsed = JSON.parse(body) as { payloads: { data?: string }[] };
    return parsed.payloads.map((payload) => Buffer.from(payload.data ?? '', 'base64').toString('utf8'));
  });
}

/** Waits for what an operator would look for; on failure, says what was missing where, with a screenshot. */
async function see(page: Page, what: string, locator: Locator, timeout = 30_000): Promise<Locator> {
  try {
    await locator.first().waitFor({ state: 'visible', timeout });
    return locator.first();
  } catch (error) {
    const shot = join(SHOTS, `FAILED-${Date.now()}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => undefined);
    throw new Error(`the Web UI did not show ${what} on ${page.url()} within ${timeout} ms (screenshot ${shot}): ${(error as Error).message.split('\n')[0]}`);
  }
}

async function keep(page: Page, seen: Seen, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  seen.pages.push({ name, url: page.url(), html: await page.content(), text: await page.innerText('body') });
}

/** The JSON shown in one of the UI's read-only code editors (input, result, query answer). */
async function jsonIn(editor: Locator): Promise<unknown> {
  const text = await editor.locator('.cm-content').first().innerText();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`the Web UI showed text that is not JSON where decoded JSON was expected: ${text.slice(0, 300)}`);
  }
}

describe('the Temporal Web UI as the operators’ console (real Chromium, real codec server)', () => {
  it('lists a parked backup under BackupStatus = "NEEDS_ATTENTION", shows its decoded input, last error and progress, and no share material', { timeout: 150_000 }, async () => {
    const parkedUser = env.seedUser('webui-parked');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 403, userId: parkedUser });
    const { runId } = await env.backups.startBackupWorkflow(parkedUser);
    const doneUser = env.seedUser('webui-done');
    await env.backups.startBackupWorkflow(doneUser);
    await env.backups.waitForBackup(doneUser);
    const parked = await waitUntilParked(env.backups, parkedUser);
    const lastError = parked.progress!.lastError!;
    expect(lastError).toMatchObject({ step: 'MARK', type: 'PortalAuthError' });
    // The list reads visibility, which trails the workflow a little: wait until both runs are indexed.
    await eventually('both backups in visibility', async () => {
      const [needsAttention, completed] = await Promise.all([
        env.backups.listBackups({ status: 'NEEDS_ATTENTION' }),
        env.backups.listBackups({ status: 'COMPLETED' }),
      ]);
      return needsAttention.some((b) => b.userId === parkedUser) && completed.some((b) => b.userId === doneUser) ? true : undefined;
    });

    const seen: Seen = { pages: [], codecAnswers: [], pending: [] };
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.setDefaultTimeout(30_000);
    watchCodecAnswers(page, seen);
    const workflowId = `backup-${parkedUser}`;

    // 1. The workflow list, filtered as an operator does.
    await page.goto(`${ui}/namespaces/${NAMESPACE}/workflows?query=${encodeURIComponent(PARKED_QUERY)}`);
    const row = await see(page, `the parked backup ${workflowId} in the filtered list`, page.getByRole('link', { name: workflowId, exact: true }));
    await see(page, 'the BackupStatus filter', page.getByText(`"NEEDS_ATTENTION"`));
    expect(await page.getByRole('link', { name: `backup-${doneUser}`, exact: true }).count(), 'a completed backup listed under NEEDS_ATTENTION').toBe(0);
    await keep(page, seen, '1-workflow-list');

    // 2. Its detail page: the input decoded by the codec server, and the activity failure that parked it.
    await row.click();
    await page.waitForURL(`**/workflows/${workflowId}/${runId}/**`);
    const inputPanel = page.getByTestId('input-and-result');
    await see(page, `the decoded input (user id ${parkedUser})`, inputPanel.getByText(parkedUser));
    expect(await jsonIn(inputPanel), 'the decoded workflow input').toEqual({ userId: parkedUser });
    await keep(page, seen, '2-workflow-detail');
    const failedEvent = await see(page, 'the Activity Task Failed event', page.getByTestId('event-summary-row').filter({ hasText: 'Activity Task Failed' }));
    await failedEvent.click();
    const expanded = page.getByTestId('event-summary-row-expanded').filter({ hasText: 'encodedAttributes' });
    const message = await see(page, `the decoded last error (${lastError.message})`, expanded.getByText(lastError.message, { exact: false }));
    await expect(expanded.first().innerText()).resolves.toContain('RETRY_STATE_NON_RETRYABLE_FAILURE');
    await message.scrollIntoViewIfNeeded();
    await keep(page, seen, '3-last-error');

    // 3. The Queries tab: the progress query, answered by the worker and decoded by the codec server.
    await page.getByTestId('queries-tab').click();
    await page.waitForURL(`**/workflows/${workflowId}/${runId}/query`);
    await see(page, 'the query type selector', page.getByTestId('query-select-button'));
    await page.getByTestId('query-select-button').click();
    await (await see(page, 'the progress query in the selector', page.getByRole('option', { name: 'progress', exact: true }))).click();
    await page.getByRole('button', { name: /^(Run|Refresh) Query$/ }).click();
    const answer = page.getByTestId('query-result');
    await see(page, 'the progress query answer with NEEDS_ATTENTION', answer.getByText('NEEDS_ATTENTION'));
    expect(await jsonIn(answer), 'the progress query answer').toMatchObject({
      userId: parkedUser,
      status: 'NEEDS_ATTENTION',
      step: 'MARK',
      pairIds: parked.progress!.pairIds,
      lastError: { step: 'MARK', type: 'PortalAuthError', message: lastError.message },
    });
    await keep(page, seen, '4-progress-query');
    await Promise.all(seen.pending);
    await page.close();

    // 4. No share material on any page, nor in anything the codec server decoded for the browser.
    const decoded = decodedPayloads(seen);
    expect(decoded.length, 'payloads the browser had decoded by the codec server').toBeGreaterThan(3);
    const shown = [...seen.pages.flatMap((p) => [p.html, p.text]), ...decoded];
    const secrets = [
      ...secretsOf(env.simulator.state.user(parkedUser)!),
      ...secretsOf(env.simulator.state.user(doneUser)!),
      env.vault.token,
      ...inject('sealingKeys').split(',').map((entry) => entry.split(':')[1]!),
    ];
    expect(leaksIn(shown, secrets), 'secrets shown by the Web UI').toEqual([]);
    // The scan reads what the operator reads: the ids it must find are there.
    const pairIds = Object.values(parked.progress!.pairIds!);
    expect(leaksIn(shown, [parkedUser, ...pairIds, lastError.message])).toHaveLength(pairIds.length + 2);
    for (const { name, url } of seen.pages) expect(url, `${name} was on the UI's origin`).toContain(ui);
  });
});
