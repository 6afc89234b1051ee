export { backupWallet } from './backup-wallet';
