import { describe, expect, it } from 'vitest';
import * as databaseErrors from '../../db/errors';
import * as errors from '../../domain/errors';

describe('domain errors', () => {
  type DomainErrorClass = (new (message: string) => errors.BackupDomainError) & { name: string };
  const classes = ([...Object.values(errors), ...Object.values(databaseErrors)] as unknown[]).filter(
    (value): value is DomainErrorClass =>
      typeof value === 'function' && (value as { prototype: unknown }).prototype instanceof errors.BackupDomainError,
  );

  it('each carries its class name as its type, which the retry policy matches on', () => {
    expect(classes.length).toBeGreaterThan(10);
    for (const ErrorClass of classes) expect(new ErrorClass('m').name).toBe(ErrorClass.name);
  });

  it('PERMANENT_ERROR_TYPES lists exactly the non-retryable ones', () => {
    const permanent = classes.filter((C) => !new C('m').retryable).map((C) => C.name);
    // UnexpectedError is no class: it names any unclassified error (a bug), which is not retried.
    expect(errors.PERMANENT_ERROR_TYPES.filter((type) => type !== 'UnexpectedError').sort()).toEqual(permanent.sort());
  });
});
