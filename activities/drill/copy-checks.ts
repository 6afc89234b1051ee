import type { BackupPairIds } from '../../domain/backup-types';
import type { Curve } from '../../domain/curves';
import { CiphertextBeingRewrappedError } from '../../domain/errors';
import type { DrillFailureKind } from '../../contracts/restore-drill-api';
import { openStoredBackup, type StoredShareProblem } from '../../adapters/stores/stored-backup';
import { readCopies, storeCopies, type CopyRead } from '../../adapters/stores/ciphertext-copies';
import type { DrillActivityDeps } from './drill-activity-types';

export type Problem = { kind: DrillFailureKind; reason: string };

/** One readable copy and what opening it found (no problems: it restores the wallet). */
type OpenedCopy = { store: string; ciphertexts: Record<Curve, string>; problems: StoredShareProblem[] };

/**
 * Every copy of the backup, checked as a restore would read it. `restore`: whether any copy restores
 * (else the first readable copy's problems, for the caller to diagnose); `copies`: a copy that is
 * missing (COPY_MISSING) or does not restore (COPY_DIVERGES), named by its store, when several
 * stores keep copies. Identical copies are opened once.
 */
export async function checkCopies(
  deps: DrillActivityDeps,
  userId: string,
  pairIds: BackupPairIds,
): Promise<{ missingEverywhere?: Problem; unrestorable?: OpenedCopy; copies: Problem[] }> {
  const stores = storeCopies(deps);
  const reads = await readCopies(stores, userId, pairIds);
  const opened = await openEach(deps, userId, pairIds, reads);
  const [firstReadable] = opened;
  if (!firstReadable) return { missingEverywhere: missingEverywhere(reads), copies: [] };
  const restores = opened.some((copy) => copy.problems.length === 0);
  const copies = stores.length > 1 ? copyProblems(reads, opened) : [];
  return restores ? { copies } : { unrestorable: firstReadable, copies };
}

async function openEach(deps: DrillActivityDeps, userId: string, pairIds: BackupPairIds, reads: CopyRead[]): Promise<OpenedCopy[]> {
  const opened: OpenedCopy[] = [];
  for (const read of reads) {
    if (!('ciphertexts' in read)) continue;
    const same = opened.find((copy) => JSON.stringify(copy.ciphertexts) === JSON.stringify(read.ciphertexts));
    const problems = same ? same.problems : (await openStoredBackup(deps.transit, userId, pairIds, read.ciphertexts)).problems;
    const rewrapping = problems.filter((problem) => problem.rewrapping);
    // Not a finding: a rotation rewrapped it since it was read; the retried check reads it again.
    if (rewrapping.length > 0) throw new CiphertextBeingRewrappedError(`user ${userId}, ${read.store} copy: ${rewrapping.map((p) => `${p.curve} pair ${p.pairId} ${p.reason}`).join('; ')}`);
    opened.push({ store: read.store, ciphertexts: read.ciphertexts, problems });
  }
  return opened;
}

function missingEverywhere(reads: CopyRead[]): Problem {
  const [only] = reads;
  if (reads.length === 1 && only && 'missing' in only) {
    return { kind: 'CIPHERTEXT_MISSING', reason: `a completed pair has no ciphertext in the ${only.store} store: ${only.missing}` };
  }
  const each = reads.map((read) => `${read.store}: ${'missing' in read ? read.missing : 'present'}`).join('; ');
  return { kind: 'CIPHERTEXT_MISSING', reason: `a completed pair has no ciphertext in any of the ${reads.length} stores that keep copies: ${each}` };
}

function copyProblems(reads: CopyRead[], opened: OpenedCopy[]): Problem[] {
  return reads.flatMap((read): Problem[] => {
    if ('missing' in read) return [{ kind: 'COPY_MISSING', reason: `the ${read.store} copy is missing: ${read.missing}` }];
    const copy = opened.find((candidate) => candidate.store === read.store)!;
    return copy.problems.map((problem) => ({ kind: 'COPY_DIVERGES', reason: `the ${read.store} copy does not restore: ${problem.curve} pair ${problem.pairId} ${problem.reason}` }));
  });
}
