import type { ManagedProcess } from '../stack/managed-process';
import type { CampaignContext } from './campaign-context';
import { sleep } from './resilient';

export interface UnexpectedExit {
  process: string;
  code: number | null;
  at: number;
}

/**
 * Tells the campaign's own kills from exits nobody asked for: a process that exits by itself is
 * recorded (a finding for the report) and started again, so one crash does not end the run.
 */
export class ProcessSupervisor {
  readonly unexpectedExits: UnexpectedExit[] = [];
  private readonly killing = new Set<ManagedProcess>();

  constructor(private readonly ctx: CampaignContext) {}

  /** Starts a process again if it exits without the campaign killing it (and records that it did). */
  watch(child: ManagedProcess, name: string, restart: () => Promise<unknown> | unknown): void {
    void child.exited.then(async (code) => {
      if (this.ctx.done || this.killing.has(child)) return;
      this.recordExit(name, code);
      this.ctx.say(`${name} exited by itself (code ${code}); starting it again`);
      await sleep(1_000);
      if (!this.ctx.done) await Promise.resolve(restart()).catch((error: unknown) => this.ctx.say(`${name} did not start again: ${String(error)}`));
    });
  }

  recordExit(name: string, code: number | null): void {
    this.unexpectedExits.push({ process: name, code, at: Date.now() - this.ctx.started });
  }

  /** A kill the campaign means: its exit is not reported, nor the process restarted by `watch`. */
  async killOnPurpose(child: ManagedProcess | undefined): Promise<void> {
    if (!child) return;
    this.killing.add(child);
    await child.kill();
  }
}
