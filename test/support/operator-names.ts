/**
 * The test stack's operators (global-setup seeds a Transit key `operator-<name>` and a token that may
 * sign only with it, for each): ops-alice and ops-bob approve (RECOVERY_APPROVERS of every test
 * worker), ops-carol requests, ops-mallory is a verified operator who is not an approver.
 */
export const TEST_OPERATORS = ['ops-alice', 'ops-bob', 'ops-carol', 'ops-mallory'] as const;
export type TestOperator = (typeof TEST_OPERATORS)[number];
export const TEST_APPROVERS = 'ops-alice,ops-bob';
/** The HTTP API's signing identity: its token may sign only with `mpc-backup-api`. */
export const API_SIGNER = 'api';
