export { backupWallet } from './backup-wallet';
export { batchBackup } from './batch-backup';
