import type { SeededRandom } from '../simulator/seeded-random';
import type { CampaignOptions } from './campaign-options';

/** What every part of one campaign run shares: its options, its seeded draws, its log and its end. */
export interface CampaignContext {
  options: CampaignOptions;
  /** One seeded sequence for the whole run: the parts draw from it in a fixed order, so a seed replays. */
  random: SeededRandom;
  say: (line: string) => void;
  /** When the run started (ms since the epoch). */
  started: number;
  /** When the run gives up (`started + timeoutMs`). */
  deadline: number;
  /** Run in reverse at the end, whether the run passed, failed or threw. */
  cleanups: (() => Promise<unknown>)[];
  /** Set when the backups are over (or the run failed): processes that exit then are not restarted. */
  done: boolean;
}
