import type { Drill } from '../report.js';
import { fuzzDrill } from './fuzz.js';
import { diskFullDrill } from './disk-full.js';
import { killBurstDrill } from './kill-burst.js';
import { outageDrill } from './outage.js';
import { redisLossDrill } from './redis-loss.js';
import { sendersDrill } from './senders.js';

/** Every drill, in the order `npm run drills` runs them. */
export const drills: readonly Drill[] = [killBurstDrill('edge'), killBurstDrill('gateway'), redisLossDrill, outageDrill, diskFullDrill, fuzzDrill, sendersDrill];
