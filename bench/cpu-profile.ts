/** A V8 .cpuprofile, as `node --cpu-prof` writes it. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; hitCount?: number }[];
  samples?: number[];
}

const CATEGORIES: [string, RegExp][] = [
  ['payload codec (AES-GCM, protobuf)', /codec\/|@temporalio\/proto|protobufjs/],
  ['Temporal SDK and core bridge (workflow tasks, activations)', /@temporalio\//],
  ['workflow sandbox (bundled workflow code)', /workflow-bundle|\/workflows\//],
  ['HTTP clients (axios, node http)', /axios|node:_http|node:http|follow-redirects/],
  ['Vault client (node-vault)', /node-vault|mustache|tv4/],
  ['validation (zod)', /zod/],
  ['our activities', /\/activities\//],
  ['logging (pino)', /pino/],
  ['TypeScript loader (tsx, esbuild)', /tsx|esbuild/],
  ['node internals', /^node:/],
];

/** Self time by category over several profiles (threads of one process), idle excluded. */
export function summarizeCpuProfiles(profiles: CpuProfile[]) {
  const totals = new Map<string, number>();
  let all = 0;
  for (const profile of profiles) all += tally(profile, totals);
  const busy = all - (totals.get('idle') ?? 0);
  totals.delete('idle');
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([category, count]) => ({ category, percentOfBusy: Math.round((count / busy) * 1000) / 10 }));
}

function tally(profile: CpuProfile, totals: Map<string, number>): number {
  const hits = new Map<number, number>();
  for (const id of profile.samples ?? []) hits.set(id, (hits.get(id) ?? 0) + 1);
  let all = 0;
  for (const node of profile.nodes) {
    const count = hits.get(node.id) ?? node.hitCount ?? 0;
    if (!count) continue;
    all += count;
    const url = node.callFrame.url;
    const name = node.callFrame.functionName;
    const category =
      url === '' ? (name === '(idle)' ? 'idle' : name === '(garbage collector)' ? 'garbage collection' : `native: ${name || '(program)'}`) : (CATEGORIES.find(([, pattern]) => pattern.test(url))?.[0] ?? 'other');
    totals.set(category, (totals.get(category) ?? 0) + count);
  }
  return all;
}
