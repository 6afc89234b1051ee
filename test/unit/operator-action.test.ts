import { describe, expect, it } from 'vitest';
import { OperatorActionInvalidError, parseSignedAction, requireActionFor, signingKeyOf, statementText, type OperatorActionStatement } from '../../domain/operator-action';
import { loadApiConfig } from '../../api/config';
import { approvalEnvProblems, approvalEnvSchema, toApprovalConfig } from '../../config/approval-config';

const NOW = Date.parse('2026-12-05T04:00:00.000Z');
const statement: OperatorActionStatement = {
  v: 1, kind: 'recover-approve', workflowId: 'recover-u1', runId: 'run-1', userId: 'u1', operator: 'ops-alice', via: 'operator', issuedAt: new Date(NOW).toISOString(), nonce: 'n',
};
const signed = (s: OperatorActionStatement | string) => ({ statement: typeof s === 'string' ? s : statementText(s), signature: 'vault:v1:AAAA' });
const expected = { kind: 'recover-approve' as const, workflowId: 'recover-u1', runId: 'run-1', userId: 'u1', nowMs: NOW };

describe('signed operator actions (domain/operator-action.ts)', () => {
  it('takes a statement that names exactly this act on this run, now', () => {
    expect(requireActionFor(signed(statement), expected)).toEqual(statement);
  });

  it('refuses another act, run, workflow or user, and a stale or future statement, naming each problem', () => {
    const other = { ...statement, kind: 'recover-reject' as const, runId: 'run-2', workflowId: 'recover-u2', userId: 'u2', issuedAt: new Date(NOW - 11 * 60_000).toISOString() };
    expect(() => requireActionFor(signed(other), expected)).toThrow(/recover-reject, not a recover-approve.*workflow recover-u2, not recover-u1.*run run-2, not this run run-1.*user u2, not u1.*more than 10 minutes/);
    expect(() => requireActionFor(signed({ ...statement, issuedAt: new Date(NOW + 11 * 60_000).toISOString() }), expected)).toThrow(/sign it again/);
  });

  it('refuses hostile shapes: no action, no signature, non-JSON, extra or reordered fields, a bad operator name', () => {
    expect(() => parseSignedAction(undefined)).toThrow(OperatorActionInvalidError);
    expect(() => parseSignedAction({ statement: statementText(statement), signature: 'made-up' })).toThrow(/Vault Transit signature/);
    expect(() => parseSignedAction(signed('not json'))).toThrow(/not JSON/);
    expect(() => parseSignedAction(signed(JSON.stringify({ ...JSON.parse(statementText(statement)), extra: 1 })))).toThrow(/canonical/);
    const { v, ...rest } = statement;
    expect(() => parseSignedAction(signed(JSON.stringify({ ...rest, v })))).toThrow(/canonical/);
    expect(() => parseSignedAction(signed({ ...statement, operator: 'Ops Alice' }))).toThrow(/operator must be a name/);
  });

  it('a fleet-run control names no user; every per-user act (recovery, backup) still needs one', () => {
    const { userId: _user, ...noUser } = statement;
    const pause = { ...noUser, kind: 'fleet-pause' as const, workflowId: 'batch-b1' };
    expect(requireActionFor(signed(pause), { kind: 'fleet-pause', workflowId: 'batch-b1', runId: 'run-1', nowMs: NOW })).toEqual(pause);
    expect(() => parseSignedAction(signed({ ...pause, userId: 'u1' }))).toThrow(/a fleet-pause names no user/);
    expect(() => parseSignedAction(signed(noUser))).toThrow(/userId is required/);
    expect(() => parseSignedAction(signed({ ...noUser, kind: 'backup-retry' }))).toThrow(/userId is required/);
  });

  it('verifies an operator with their own key and an API token name with the API key', () => {
    const keys = { operatorKeyPrefix: 'operator-', apiKey: 'mpc-backup-api' };
    expect(signingKeyOf(statement, keys)).toBe('operator-ops-alice');
    expect(signingKeyOf({ ...statement, via: 'api' }, keys)).toBe('mpc-backup-api');
  });
});

describe('approval and API identity configuration', () => {
  const approvals = (env: Record<string, string>) => approvalEnvSchema.parse(env);

  it('defaults to two approvals for 24 hours, and refuses fewer approvers than approvals', () => {
    expect(toApprovalConfig(approvals({ RECOVERY_APPROVERS: 'ops-alice, ops-bob' }))).toMatchObject({ approvers: ['ops-alice', 'ops-bob'], required: 2, ttlMs: 86_400_000 });
    expect(approvalEnvProblems(approvals({ RECOVERY_APPROVERS: 'ops-alice' }))).toEqual([expect.stringContaining('no recovery could ever be approved')]);
    expect(() => approvals({ RECOVERY_APPROVERS: 'Ops Alice' })).toThrow(/operator names/);
  });

  it('reads API_TOKENS as name:token (the identity) or a bare token, and refuses a bad name', () => {
    const base = { TEMPORAL_ADDRESS: '127.0.0.1:7233', PAYLOAD_CODEC_KEYS: `k1:${Buffer.alloc(32).toString('base64')}` };
    const config = loadApiConfig({ ...base, API_TOKENS: `ops-alice:${'a'.repeat(32)},${'b'.repeat(32)}` });
    expect(config.tokens).toEqual([{ name: 'ops-alice', token: 'a'.repeat(32) }, { token: 'b'.repeat(32) }]);
    expect(config.signing).toBeUndefined();
    expect(() => loadApiConfig({ ...base, API_TOKENS: `Ops Alice:${'a'.repeat(32)}` })).toThrow(/named token is name:token/);
  });
});
