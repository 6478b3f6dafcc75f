/**
 * Learning-rate schedules laid over a run's planned length, and the planner that turns a time
 * budget into that length.
 *
 * A schedule is a multiplier of --lr as a function of the plan's progress p = step / planned
 * steps, in [0, 1]. The planned length is --epochs, or, with --max-minutes, as many whole epochs
 * as the budget holds at the measured pace, re-estimated at every epoch boundary, so the lr
 * reaches 0 at the budget's end and the last evaluation and checkpoint still fit inside it.
 */

export const SCHEDULES = ['constant', 'linear-tail', 'cosine'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

/**
 * The lr multiplier at progress p.
 * - constant: 1 throughout (the paper: 3e-3 for all 300 epochs).
 * - linear-tail: 1, then linear to 0 over the last `tail` of the plan (Bad GAN's
 *   min(3(1 - p), 1) is tail 1/3; Ladder networks decay over the last third too).
 * - cosine: (1 + cos(pi p)) / 2 (SGDR without restarts).
 */
export function scheduleFactor(name: ScheduleName, p: number, tail: number): number {
  const q = Math.min(1, Math.max(0, p));
  switch (name) {
    case 'constant':
      return 1;
    case 'linear-tail':
      return q <= 1 - tail ? 1 : (1 - q) / tail;
    case 'cosine':
      return 0.5 * (1 + Math.cos(Math.PI * q));
  }
}

/**
 * Learning rate of the step about to run (0-based `step`) in a plan of `plannedSteps`.
 * The legacy --lr-decay-start (constant per epoch, linear to 0 at --epochs) is kept for
 * earlier runs, which it reproduces exactly.
 */
export function lrAtStep(
  config: { lr: number; schedule: ScheduleName; lrTail: number; lrDecayStart: number | null; epochs: number },
  step: number,
  plannedSteps: number,
  itersPerEpoch: number,
): number {
  if (config.lrDecayStart !== null) {
    const epoch = Math.floor(step / itersPerEpoch);
    const start = config.lrDecayStart;
    if (epoch < start) return config.lr;
    return config.lr * Math.max(0, (config.epochs - epoch) / (config.epochs - start));
  }
  return config.lr * scheduleFactor(config.schedule, step / plannedSteps, config.lrTail);
}

/**
 * Share of the budget kept free for a run's variance: an epoch slower than the one measured
 * must not push the last evaluation past the budget (the hard stop would then cut an epoch with
 * its lr above 0).
 */
export const BUDGET_MARGIN = 0.01;

/**
 * Planned total epochs for a time budget: the epochs done plus the whole epochs that fit in
 * what is left of the budget at `epochSeconds` each (an epoch's steps, evaluation and
 * checkpoint), at most `cap`, at least the epochs done.
 */
export function planEpochs(a: {
  cap: number;
  epochsDone: number;
  secondsUsed: number;
  budgetSeconds: number;
  epochSeconds: number;
}): number {
  const left = a.budgetSeconds * (1 - BUDGET_MARGIN) - a.secondsUsed;
  const more = Math.max(0, Math.floor(left / a.epochSeconds));
  return Math.min(a.cap, a.epochsDone + more);
}

/**
 * Pace of an invocation: seconds per epoch, steps, evaluation and checkpoint included. Until
 * an epoch has ended in this invocation, it is the iterations' mean pace times the epoch's
 * length plus `evalShare` of that for the evaluation; afterwards, the mean of the last
 * PACE_WINDOW whole epochs (one epoch alone is noisy; a longer window lags a machine that slows).
 */
const PACE_WINDOW = 3;

export class Pace {
  private firstStepAt: number | null = null;
  private stepsTimed = 0;
  private lastStepAt = 0;
  private epochStartedAt: number | null = null;
  private readonly epochSecondsSeen: number[] = [];

  /** `measured`: whole epochs' seconds from before a resume (checkpointed), so the plan goes on unchanged. */
  constructor(
    private readonly itersPerEpoch: number,
    measured: readonly number[] = [],
    private readonly evalShare = 0.05,
  ) {
    this.epochSecondsSeen.push(...measured.slice(-PACE_WINDOW));
  }

  /** The whole epochs measured (the last PACE_WINDOW), for the checkpoint. */
  get measured(): number[] {
    return this.epochSecondsSeen.slice(-PACE_WINDOW);
  }

  /** True until a whole epoch has been measured: the estimate is then the steps' pace. */
  get provisional(): boolean {
    return this.epochSecondsSeen.length === 0;
  }

  /** After each iteration (the first only starts the clock: it carries one-off start-up costs). */
  stepDone(nowMs: number): void {
    if (this.firstStepAt === null) this.firstStepAt = nowMs;
    else this.stepsTimed++;
    this.lastStepAt = nowMs;
  }

  /** At an epoch boundary, after its evaluation and checkpoint. */
  epochDone(nowMs: number, wholeEpoch: boolean): void {
    if (this.epochStartedAt !== null && wholeEpoch) this.epochSecondsSeen.push((nowMs - this.epochStartedAt) / 1000);
    this.epochStartedAt = nowMs;
  }

  /** The first epoch boundary (or start) of this invocation. */
  start(nowMs: number): void {
    this.epochStartedAt = nowMs;
  }

  /** Steps timed so far (the estimate needs a few). */
  get samples(): number {
    return this.stepsTimed;
  }

  /** Seconds one epoch takes at the measured pace (null before any step was timed). */
  epochSeconds(): number | null {
    const seen = this.epochSecondsSeen.slice(-PACE_WINDOW);
    if (seen.length) return seen.reduce((a, b) => a + b, 0) / seen.length;
    if (this.stepsTimed === 0 || this.firstStepAt === null) return null;
    const msPerStep = (this.lastStepAt - this.firstStepAt) / this.stepsTimed;
    return ((msPerStep * this.itersPerEpoch) / 1000) * (1 + this.evalShare);
  }
}

/**
 * The weight multiplier of the consistency and entropy terms at plan progress p: the Gaussian
 * ramp-up of Laine & Aila (2017) and mean teacher, exp(-5 (1 - p / r)^2) until p = r, then 1.
 * r = 0: no ramp. It follows the same clock as the lr: a time budget's plan.
 */
export function rampUpFactor(p: number, r: number): number {
  if (r <= 0 || p >= r) return 1;
  const t = 1 - Math.max(0, p) / r;
  return Math.exp(-5 * t * t);
}
