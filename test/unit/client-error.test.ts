import { NamespaceNotFoundError, WorkflowNotFoundError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { BackupActionRejectedError, BackupFailedError, BackupNotFoundError } from '../../client/backup-client';
import { BatchOptionsError } from '../../client/batch-client';
import { CLIENT_ERROR_KINDS, ClientError, clientErrorView } from '../../client/client-error';
import { EjectCollectRefusedError } from '../../client/eject';
import { AuditArgumentError, AuditTrailTamperedError } from '../../client/audit-client';
import { CoverageOptionsError } from '../../client/cli-coverage';
import { KeysArgumentError } from '../../client/cli-keys';
import { DrillFailedError, DrillOptionsError } from '../../client/drill-client';
import { KeyRotationNotFoundError, KeyRotationOptionsError } from '../../client/keys-client';
import { UserListFileError } from '../../client/user-list-file';
import { ConfigError } from '../../config/config-error';
import { InvalidIdempotencyKeyError } from '../../domain/idempotency-key';
import { InvalidUserIdError } from '../../domain/user-id';

describe('client errors: one base declares exit code and HTTP status', () => {
  const cases: Array<[ClientError, number]> = [
    [new BatchOptionsError('x'), 400],
    [new CoverageOptionsError('x'), 400],
    [new KeysArgumentError('x'), 400],
    [new DrillOptionsError('x'), 400],
    [new KeyRotationOptionsError('x'), 400],
    [new UserListFileError('x'), 400],
    [new AuditArgumentError('x'), 400],
    [new BackupNotFoundError('x'), 404],
    [new KeyRotationNotFoundError('x'), 404],
    [new BackupActionRejectedError('x'), 409],
    [new EjectCollectRefusedError('x'), 409],
    [new DrillFailedError('x'), 409],
    [new BackupFailedError('user-1', undefined, 'x'), 409],
  ];

  it.each(cases)('%s answers its kind’s status and exits 2', (error, status) => {
    const view = clientErrorView(error);
    expect(view).toEqual({ exitCode: 2, httpStatus: status, code: error.name, message: 'x' });
    expect(view?.httpStatus).toBe(CLIENT_ERROR_KINDS[error.kind].httpStatus);
  });

  it('an audit trail that fails verification exits 4 and names the first bad row in its message', () => {
    const problem = { kind: 'changed' as const, seq: 3, eventId: 'wf/run/backup.retried/u1', message: 'row 3 (wf/run/backup.retried/u1) was changed: its fields no longer match its hash' };
    const error = new AuditTrailTamperedError({ ok: false, rows: 5, unsealedRows: 0, problems: [problem, { ...problem, seq: 4 }] });
    expect(clientErrorView(error)).toMatchObject({ exitCode: 4, httpStatus: 409, code: 'AuditTrailTamperedError' });
    expect(error.message).toMatch(/^the audit trail failed verification: row 3 \(wf\/run\/backup.retried\/u1\) was changed.*and 1 more problem/);
  });

  it('a failed backup answers with its reason type as the code', () => {
    expect(clientErrorView(new BackupFailedError('user-1', 'BackupAbandonedError', 'abandoned by ops'))?.code).toBe('BackupAbandonedError');
  });

  it('input checks of domain/ and config/ are the caller’s to fix: 400, exit 2', () => {
    for (const error of [new InvalidUserIdError('bad id'), new InvalidIdempotencyKeyError('bad key'), new ConfigError(['X is required'])]) {
      expect(clientErrorView(error)).toMatchObject({ exitCode: 2, httpStatus: 400, code: error.name });
    }
  });

  it('the Temporal client’s not-found and refused update map to 404 and 409 with the refusal’s own message', () => {
    const notFound = Object.assign(new Error('workflow not found for ID: batch-1'), { name: 'WorkflowNotFoundError' });
    expect(clientErrorView(notFound)).toMatchObject({ httpStatus: 404, code: 'WorkflowNotFoundError' });
    const refused = Object.assign(new Error('Workflow Update failed'), { name: 'WorkflowUpdateFailedError', cause: new Error('the batch is not paused') });
    expect(clientErrorView(refused)).toMatchObject({ httpStatus: 409, message: 'the batch is not paused' });
  });

  it('no raw Temporal message without a sentence saying what it means and what to do (the raw one kept after it)', () => {
    const ended = clientErrorView(new WorkflowNotFoundError('workflow execution already completed', 'batch-1', undefined));
    expect(ended).toMatchObject({ exitCode: 2, httpStatus: 409 });
    expect(ended?.message).toBe(
      'that run has already ended, so it takes no more actions (pause, resume, cancel, retry, …); its status or report says how it ended (Temporal: "workflow execution already completed")',
    );
    const missing = clientErrorView(new WorkflowNotFoundError('workflow not found for ID: batch-nope', 'batch-nope', undefined));
    expect(missing).toMatchObject({ exitCode: 2, httpStatus: 404 });
    expect(missing?.message).toMatch(/^no run batch-nope: it was never started in this namespace, or retention has deleted it; check the id/);
    expect(clientErrorView(new NamespaceNotFoundError('nope'))?.message).toMatch(/^the Temporal namespace does not exist on this server: check TEMPORAL_NAMESPACE/);
    const unreachable = clientErrorView(new Error('Failed to connect before the deadline'));
    expect(unreachable).toMatchObject({ exitCode: 1, httpStatus: 503, code: 'TemporalUnreachableError' });
    expect(unreachable?.message).toMatch(/^cannot reach Temporal: is it running, and do TEMPORAL_ADDRESS/);
    const unavailable = clientErrorView(Object.assign(new Error('14 UNAVAILABLE: connection reset'), { code: 14, details: 'connection reset', metadata: {} }));
    expect(unavailable).toMatchObject({ exitCode: 1, httpStatus: 503 });
    expect(unavailable?.message).toMatch(/^Temporal is unavailable now/);
  });

  it('anything else is the service’s own fault: no view (exit 1, HTTP 500)', () => {
    expect(clientErrorView(new Error('ECONNREFUSED'))).toBeUndefined();
    expect(clientErrorView('a string')).toBeUndefined();
  });
});
