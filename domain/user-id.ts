/**
 * User ids are the company's identifiers for its wallet users. They end up in workflow ids,
 * search attributes, URLs and Vault key contexts, so only a conservative alphabet is accepted.
 * Pure module: imported by workflows, activities and clients alike.
 */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$/;

export class InvalidUserIdError extends Error {
  override readonly name = 'InvalidUserIdError';
}

export function parseUserId(raw: unknown): string {
  if (typeof raw !== 'string') {
    throw new InvalidUserIdError(`userId must be a string, got ${raw === null ? 'null' : typeof raw}`);
  }
  if (raw.length === 0) throw new InvalidUserIdError('userId must not be empty');
  if (raw.length > 128) throw new InvalidUserIdError(`userId is ${raw.length} characters long; the limit is 128`);
  if (!USER_ID_PATTERN.test(raw)) {
    throw new InvalidUserIdError(
      'userId must start with a letter or digit and contain only letters, digits and . _ @ : - ' +
        `(got ${JSON.stringify(raw.slice(0, 40))}${raw.length > 40 ? '…' : ''})`,
    );
  }
  return raw;
}

/** One backup per user at a time: the workflow id is derived from the user id alone. */
export function backupWorkflowId(userId: string): string {
  return `backup-${userId}`;
}

/** One recovery per user at a time, likewise. */
export function recoveryWorkflowId(userId: string): string {
  return `recover-${userId}`;
}

/** One eject per user at a time, likewise. */
export function ejectWorkflowId(userId: string): string {
  return `eject-${userId}`;
}
