/**
 * Removes what could be secret from text that came from outside (Portal, Vault and credentials
 * error bodies, exception messages) before it becomes an error message, which lands in workflow
 * history, the progress query and logs. Ids stay readable: pair ids (cuid, 25 characters), user
 * ids and UUIDs are shorter than the runs removed here (a user id of 40 or more letters, digits,
 * `-` and `_` in a row is removed too: a price for never letting a base64url share through).
 */
const RULES: [RegExp, string][] = [
  // An Authorization header echoed back.
  [/Bearer\s+\S+/gi, 'Bearer [redacted]'],
  // Vault tokens (hvs./hvb./hvr. and the older s./b. forms).
  [/\b(?:hv[sbr]|[sb])\.[A-Za-z0-9_-]{20,}/g, '[redacted-token]'],
  // JSON members that carry share material, whatever their length.
  [/("(?:share|signingShare|backupShare|clientApiKey|apiKey|generateResponse|plaintext|token)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi, '$1"[redacted]"'],
  // Long base64 or hex runs: shares, keys, ciphertext material.
  [/[A-Za-z0-9+/]{40,}={0,2}/g, '[redacted-base64]'],
  [/\b[0-9a-fA-F]{32,}\b/g, '[redacted-hex]'],
  // base64url (shares and keys Portal or a backend may echo): from the same length as base64.
  [/[A-Za-z0-9_-]{40,}/g, '[redacted-base64url]'],
];

export function redactSecrets(text: string): string {
  return RULES.reduce((current, [pattern, replacement]) => current.replace(pattern, replacement), text);
}
