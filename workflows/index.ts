export { backupWallet } from './backup-wallet';
export { batchBackup } from './batch-backup';
export { recoverWallet } from './recover-wallet';
export { drillFinding, restoreDrill } from './restore-drill';
export { rotateKeys } from './rotate-keys';
export { ejectShares } from './eject-shares';
