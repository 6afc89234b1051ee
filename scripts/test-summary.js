// Prints the plain closing line CI reads ("N passed, N failed") from vitest's JSON report.
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const report = JSON.parse(readFileSync(join(__dirname, '..', '.stack', 'test-results.json'), 'utf8'));
const skipped = report.numPendingTests + report.numTodoTests;
process.stdout.write(
  `tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}\n`,
);
process.exit(report.numFailedTests === 0 && report.numTotalTests > 0 ? 0 : 1);
