import * as tf from '@tensorflow/tfjs';
import { mkdirSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Rng } from '../rng.js';
import { SemiganError, configError } from '../errors.js';
import { gatherRows, type Dataset } from '../data/dataset.js';
import { augmentRows } from '../data/augment.js';
import type { TrainData } from '../data/prepare.js';
import type { GanModel } from '../models/model.js';
import { disposeParams, type Params, type Tensors } from '../nn/params.js';
import { uniformNoise } from '../nn/noise.js';
import { setMatMulPattern } from '../nn/blas_matmul.js';
import { Adam } from './adam.js';
import { Ema } from './ema.js';
import { runProgress, TailAverage } from './tail_average.js';
import {
  classKl,
  discriminatorLosses,
  featureMatchingLoss,
  nonSaturatingGeneratorLoss,
  pullAwayLoss,
  unitRows,
} from './losses.js';
import { HistoricalAverage } from './historical_averaging.js';
import { MAX_EPOCHS, type TrainConfig } from './config.js';
import { lrAtStep, Pace, planEpochs, rampUpFactor } from './schedule.js';
import { readCheckpoint, writeCheckpoint, type Checkpoint, type StoredTensor } from './checkpoint.js';
import {
  appendMetrics,
  checkpointPath,
  recordExportChoice,
  CURVES_FILE,
  SAMPLE_SCALE,
  readMetrics,
  SAMPLES_DIR,
  trimMetrics,
  writeResult,
  type CheckpointMeta,
  type EpochSums,
  type EpochMetrics,
  type TrainResult,
} from './run_dir.js';
import { describeFsError, isFsError } from '../fsutil.js';
import { createProgress, formatDuration, type ProgressStream } from './progress.js';
import { predictClasses } from '../eval/predict.js';
import {
  chooseExport,
  exportCandidates,
  validationLogitsOf,
  type ExportChoice,
  type ValidationLogits,
  type WeightSet,
  WEIGHT_SET_NAMES,
} from './weight_choice.js';
import { classificationReport } from '../eval/metrics.js';
import { writeImageGrid } from '../viz/grid.js';
import { writeCurvesPng } from '../viz/curves.js';
import { generateImages } from '../eval/generate.js';
import { SEMIGAN_VERSION } from '../version.js';

/** Seed of the z behind every sample grid: seed + this offset (fixed per run, apart from training's). */
export const SAMPLE_SEED_OFFSET = 0x5eed;

/** A run() call's clock: this invocation's start, the run's seconds before it, its budget and pace. */
interface RunClock {
  started: number;
  secondsBefore: number;
  budgetSeconds: number;
  pace: Pace;
}

/** The epoch in progress: its learning rate, clock, running loss sums and progress bar. */
interface EpochRun {
  lr: number;
  started: number;
  /** Seconds this epoch ran before a resume (0 for an epoch run in one go). */
  secondsBefore: number;
  sums: EpochSums;
  progress: ReturnType<typeof createProgress>;
  stoppedEarly: boolean;
}

interface EpochOrders {
  lab: Int32Array;
  unl: Int32Array;
  unl2: Int32Array;
}

export interface TrainerIO {
  log: (line: string) => void;
  progressStream?: ProgressStream;
  /** Called after every iteration (its work finished) with the lr it used: benchmarks time iterations with it. */
  onIteration?: (epoch: number, epochIter: number, lr: number) => void;
  /** Milliseconds of a monotonic clock (default performance.now); tests inject one for the time budget. */
  now?: () => number;
}

/** VAT's finite-difference step for the power iteration (the VAT paper's xi). */
const VAT_XI = 1e-6;

/** Iterations timed before a time budget's first plan (the first carries one-off costs). */
const PACE_WARMUP_STEPS = 10;

/** `len` indices drawn as back-to-back random permutations of 0..n-1 (every row once per pass). */
function permutedOrder(rng: Rng, n: number, len: number): Int32Array {
  const out = new Int32Array(len);
  for (let off = 0; off < len; off += n) {
    const p = rng.permutation(n);
    out.set(p.subarray(0, Math.min(n, len - off)), off);
  }
  return out;
}

const toStored = (t: tf.Tensor): StoredTensor => ({ shape: t.shape, data: t.dataSync() as Float32Array });

/**
 * One training run: D (and G unless supervised) trained on TrainData with the K+1 losses,
 * an EMA of D evaluated every epoch, and a checkpoint after every epoch.
 */
export class Trainer {
  readonly d: Params;
  readonly g: Params;
  readonly optD: Adam;
  readonly optG: Adam;
  readonly ema: Ema;
  /** The uniform average of D over the plan's tail (null without --tail-average). */
  readonly tail: TailAverage | null;
  /** Historical averaging of D and G (null when --ha is 0). */
  readonly haD: HistoricalAverage | null;
  readonly haG: HistoricalAverage | null;
  rng: Rng;
  epoch = 0;
  epochIter = 0;
  /** Restored mid-epoch: the sums and seconds of that epoch before the resume. */
  private partialEpoch: CheckpointMeta['partialEpoch'] | null = null;
  private epochRun: EpochRun | null = null;
  private lastCheckpointAt: number;
  step = 0;
  seconds = 0;
  private orders: EpochOrders | null = null;
  /** The next iteration's rows, being read from disk (data on disk only). */
  private ahead: { orders: EpochOrders; iter: number; done: Promise<void> } | null = null;
  private peakRss = 0;
  /** Set at the end of a run that stopped mid-epoch in its tail: the tail average counts D's weights once more. */
  private tailWithCurrent = false;
  /** Set at the end of a run; a checkpoint without it exports the averaged weights at temperature 1. */
  private exportChoice: ExportChoice | null = null;
  /** The run's training seconds up to now, while run() is active (checkpoints record it). */
  private liveSeconds: (() => number) | null = null;
  /** The pace of the active run() (null outside one), and the epochs it measured before a resume. */
  private pace: Pace | null = null;
  private paceMeasured: number[] = [];
  private readonly labelsOfLabeled: Int32Array;
  private readonly itersPerEpoch: number;
  /** The run's planned length: --epochs, or what the --max-minutes budget holds (schedule.ts). */
  plannedEpochs: number;
  /**
   * The lowest lr a time plan has run at. A re-plan that lengthens the run (the machine sped up)
   * would move the schedule back to a higher lr; the lr stays here until the schedule falls below.
   */
  private lrCeiling = Infinity;
  private readonly now: () => number;

  readonly config: TrainConfig;

  constructor(
    config: TrainConfig,
    readonly model: GanModel,
    readonly data: TrainData,
    private readonly io: TrainerIO,
  ) {
    // The checkpoint names the preset actually built, so `--preset auto` runs stay unambiguous.
    this.config = config.preset === model.preset ? config : Object.freeze({ ...config, preset: model.preset });
    this.rng = new Rng(config.seed);
    this.d = model.createD(this.rng);
    this.g = model.createG(this.rng);
    const adamArgs = { beta1: config.beta1, beta2: config.beta2, epsilon: 1e-8 };
    this.optD = new Adam(this.d, adamArgs);
    this.optG = new Adam(this.g, adamArgs);
    this.ema = new Ema(this.d, config.emaDecay, config.emaWarmup);
    this.tail =
      config.tailAverage === null
        ? null
        : new TailAverage(this.d.trainable, (name) => this.d.vars[name].shape, config.tailAverage);
    this.haD = config.ha > 0 ? new HistoricalAverage(this.d) : null;
    this.haG = config.ha > 0 ? new HistoricalAverage(this.g) : null;
    this.labelsOfLabeled = Int32Array.from(data.labeled, (r) => data.train.y[r]);
    this.itersPerEpoch = config.itersPerEpoch ?? Math.max(1, Math.floor(data.train.n / config.batchSize));
    this.plannedEpochs = config.epochs;
    this.now = io.now ?? (() => performance.now());
    this.lastCheckpointAt = this.now();
  }

  /** A schedule laid over a time budget: the plan is re-estimated from the measured pace. */
  private get timePlanned(): boolean {
    return this.config.maxMinutes !== null && this.config.schedule !== 'constant';
  }

  /**
   * The planned length as progress lines show it: "/~N" for a time plan ("/~?" until a pace is
   * measured), nothing for a budget without a plan (it ends when the budget does), else "/N".
   */
  private plannedText(): string {
    const { maxMinutes, epochs } = this.config;
    if (this.timePlanned) return this.plannedEpochs >= MAX_EPOCHS ? '/~?' : `/~${this.plannedEpochs}`;
    return maxMinutes !== null && epochs >= MAX_EPOCHS ? '' : `/${this.plannedEpochs}`;
  }

  /** The consistency and entropy weights' ramp-up factor for the step about to run. */
  rampNow(): number {
    return rampUpFactor(this.step / (this.plannedEpochs * this.itersPerEpoch), this.config.rampUp);
  }

  /** The lr of the step about to run. */
  lrNow(): number {
    const lr = lrAtStep(this.config, this.step, this.plannedEpochs * this.itersPerEpoch, this.itersPerEpoch);
    return this.timePlanned ? Math.min(lr, this.lrCeiling) : lr;
  }

  /**
   * Re-plan a time budget from the pace measured so far; with a schedule, a budget that holds no
   * epoch is bad input (with a constant lr the budget is a stop: mid-epoch, checkpointed).
   */
  private replan(pace: Pace, secondsUsed: number): void {
    const epochSeconds = pace.epochSeconds();
    if (!this.timePlanned || epochSeconds === null) return;
    const started = this.epoch + (this.epochIter > 0 ? 1 : 0);
    const budgetSeconds = this.config.maxMinutes! * 60;
    const planned = planEpochs({
      cap: this.config.epochs,
      epochsDone: this.epoch,
      secondsUsed: secondsUsed - (this.epochIter > 0 ? (this.epochIter / this.itersPerEpoch) * epochSeconds : 0),
      budgetSeconds,
      epochSeconds,
    });
    if (planned < 1)
      throw configError(
        `--max-minutes ${this.config.maxMinutes}: one epoch takes ~${(epochSeconds / 60).toFixed(2)} min here ` +
          `(${this.itersPerEpoch} iterations, evaluation and checkpoint), more than the budget holds; give at least ` +
          `${Math.ceil((epochSeconds / 60) * 1.05 * 100) / 100}, or fewer --iters-per-epoch`,
      );
    this.plannedEpochs = Math.max(started, planned);
  }

  /** Fresh run: data-dependent init of D on the init rows (the labeled rows when supervised, as the peer). */
  initialize(): void {
    const rows =
      this.config.mode === 'supervised' ? this.data.labeled : this.data.initRows.subarray(0, this.config.initSize);
    tf.tidy(() => this.model.initD(this.d, this.batch(this.data.train, rows), { noise: this.rng }));
  }

  private batch(data: Dataset, rows: ArrayLike<number>, augmented = false): tf.Tensor2D {
    const dim = data.x.dim;
    const { augment, augmentFlip } = this.config;
    const x = gatherRows(data, rows);
    return tf.tensor2d(augmented && augment > 0 ? augmentRows(x, data.shape, augment, augmentFlip, this.rng) : x, [
      rows.length,
      dim,
    ]);
  }

  /** The training rows iteration `iter` of `orders` reads: labeled, unlabeled for D, unlabeled for G. */
  private rowsOfIteration(orders: EpochOrders, iter: number): Int32Array {
    const bs = this.config.batchSize;
    const ub = this.unlabeledBatch;
    const lab = Int32Array.from(orders.lab.subarray(iter * bs, (iter + 1) * bs), (i) => this.data.labeled[i]);
    const unl = orders.unl.subarray(iter * ub, (iter + 1) * ub);
    const unl2 = orders.unl2.subarray(iter * bs, (iter + 1) * bs);
    const out = new Int32Array(lab.length + unl.length + unl2.length);
    out.set(lab, 0);
    out.set(unl, lab.length);
    out.set(unl2, lab.length + unl.length);
    return out;
  }

  /**
   * Data on disk: wait for this iteration's rows (asked for during the last step), and ask for
   * the next iteration's, so the reads overlap the step. In-memory data: nothing to do.
   */
  private async readAhead(orders: EpochOrders): Promise<void> {
    const x = this.data.train.x;
    if (!x.onDisk) return;
    const iter = this.epochIter;
    const ahead = this.ahead;
    const now =
      ahead?.orders === orders && ahead.iter === iter ? ahead.done : x.prefetch(this.rowsOfIteration(orders, iter));
    this.ahead = null;
    if (iter + 1 < this.itersPerEpoch) {
      const done = x.prefetch(this.rowsOfIteration(orders, iter + 1));
      done.catch(() => {}); // awaited next iteration; a run that stops first drops it
      this.ahead = { orders, iter: iter + 1, done };
    }
    await now;
  }

  /** Unlabeled rows in each D step (--unlabeled-batch, default --batch-size). */
  private get unlabeledBatch(): number {
    return this.config.unlabeledBatch ?? this.config.batchSize;
  }

  private newOrders(): EpochOrders {
    const len = this.itersPerEpoch * this.config.batchSize;
    const lab = permutedOrder(this.rng, this.data.labeled.length, len);
    const gan = this.config.mode === 'gan';
    const unl = gan
      ? permutedOrder(this.rng, this.data.train.n, this.itersPerEpoch * this.unlabeledBatch)
      : new Int32Array(0);
    const unl2 = this.config.mode === 'gan' ? permutedOrder(this.rng, this.data.train.n, len) : new Int32Array(0);
    return { lab, unl, unl2 };
  }

  private trainableVars(p: Params): tf.Variable[] {
    return p.trainable.map((n) => p.vars[n]);
  }

  /** Gradients keyed by our parameter names (tfjs keys them by engine variable name). */
  private byParamName(p: Params, grads: tf.NamedTensorMap): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const n of p.trainable) out[n] = grads[p.vars[n].name];
    return out;
  }

  /** weight * ||theta - historical mean||^2 for one player (after folding in the current theta). */
  private historicalPenalty(ha: HistoricalAverage | null): tf.Scalar | null {
    return ha ? (ha.penalty().mul(this.config.ha) as tf.Scalar) : null;
  }

  /** One D step on a labeled batch, an unlabeled batch and a generated batch. */
  private stepD(
    rowsLab: Int32Array,
    rowsUnl: Int32Array,
    lr: number,
  ): { lossLab: number; lossUnl: number; trainErr: number } {
    const { config } = this;
    const bs = rowsLab.length;
    const yLab = tf.tensor1d(
      Int32Array.from(rowsLab, (i) => this.labelsOfLabeled[i]),
      'int32',
    );
    const xLab = this.batch(
      this.data.train,
      Int32Array.from(rowsLab, (i) => this.data.labeled[i]),
      true,
    );
    const kept: tf.Tensor[] = [];
    const supervised = config.mode === 'supervised';
    this.haD?.observe();
    tf.tidy(() => {
      const xFake = supervised
        ? null
        : tf.tidy(() => this.model.applyG(this.g.vars, uniformNoise(bs, this.model.zDim, this.rng)));
      const xUnl = supervised ? null : this.batch(this.data.train, rowsUnl);
      // The consistency term's second look: the same rows, shifted when augmenting (image track).
      const twice = !supervised && config.consistency > 0;
      const xUnl2 = twice && config.augment > 0 ? this.batch(this.data.train, rowsUnl, true) : xUnl;
      // VAT: the unlabeled rows moved along their most sensitive direction, and D's class
      // distribution on them before the move (the target, fixed: computed off the tape).
      const vat = !supervised && config.vat > 0 ? this.virtualAdversary(xUnl!) : null;
      const { grads } = tf.variableGrads(() => {
        // One pass over the concatenation; `groups` keeps batch-dependent layers per source.
        // The consistency term's second look at the unlabeled rows rides in the same pass (its
        // noise is drawn per row, so independent of the first look): one pass of 4B rows costs
        // less than a pass of 3B and another of B.
        const nUnl = rowsUnl.length;
        const parts = supervised ? [xLab] : [xLab, xUnl!, xFake!, ...(twice ? [xUnl2!] : []), ...(vat ? [vat.x] : [])];
        const x = parts.length === 1 ? xLab : tf.concat(parts); // [3B, dim], plus B for each extra look
        const groups = parts.map((t) => t.shape[0]);
        const { logits } = this.model.applyD(this.d.vars, x, { noise: this.rng, groups });
        const ramp = supervised ? 0 : this.rampNow();
        const { total, parts: logged } = discriminatorLosses(logits, yLab, {
          labeled: bs,
          unlabeled: supervised ? 0 : nUnl,
          generated: supervised ? 0 : bs,
          secondLook: twice ? 2 * bs + nUnl : null,
          realTarget: config.labelSmoothing,
          unlabeledWeight: config.unlabeledWeight,
          entropy: config.entropy * ramp,
          consistency: config.consistency * ramp,
        });
        kept.push(tf.keep(logged));
        let loss = total;
        if (vat) {
          const adv = logits.slice([logits.shape[0] - nUnl, 0], [nUnl, -1]) as tf.Tensor2D;
          loss = loss.add(classKl(vat.target, adv).mul(config.vat * ramp));
        }
        const penalty = this.historicalPenalty(this.haD);
        return penalty ? loss.add(penalty) : loss;
      }, this.trainableVars(this.d));
      this.optD.apply(this.byParamName(this.d, grads), lr);
    });
    this.ema.update();
    const [lossLab, lossUnl, trainErr] = kept[0].dataSync();
    tf.dispose([...kept, xLab, yLab]);
    return { lossLab, lossUnl, trainErr };
  }

  /**
   * VAT's adversarial perturbation (Miyato et al. 2018, one power iteration): a random unit
   * direction d per row, g = grad over r of KL(p(x) || p(x + r)) at r = xi d, and
   * r_adv = vatEps * g / |g| per row. Returns x + r_adv and the target logits p(x). D's noise
   * stays on (its training-mode distribution); the draws come from the run's generator.
   */
  private virtualAdversary(xUnl: tf.Tensor2D): { x: tf.Tensor2D; target: tf.Tensor2D } {
    const { config } = this;
    const n = xUnl.shape[0];
    const target = this.model.applyD(this.d.vars, xUnl, { noise: this.rng, groups: [n] }).logits;
    const d = unitRows(
      tf.tensor2d(this.rng.fillNormal(new Float32Array(xUnl.size), 1), xUnl.shape as [number, number]),
    );
    const kl = (r: tf.Tensor) =>
      classKl(target, this.model.applyD(this.d.vars, xUnl.add(r), { noise: this.rng, groups: [n] }).logits);
    const g = tf.grad(kl)(d.mul(VAT_XI)) as tf.Tensor2D;
    return { x: xUnl.add(unitRows(g).mul(config.vatEps)), target };
  }

  /** One G step: feature matching against a real batch, or the non-saturating loss when FM is off. */
  private stepG(rowsUnl: Int32Array, lr: number): number {
    const { config } = this;
    const bs = rowsUnl.length;
    const kept: tf.Tensor[] = [];
    this.haG?.observe();
    tf.tidy(() => {
      // D is fixed in this step: fold its kernels once for both passes, outside the gradient tape.
      const d = this.model.foldD?.(this.d.vars) ?? this.d.vars;
      const featReal = config.fm
        ? this.model.applyD(d, this.batch(this.data.train, rowsUnl), { noise: this.rng }).features // [B, F]
        : null;
      const z = uniformNoise(bs, this.model.zDim, this.rng);
      const { grads } = tf.variableGrads(() => {
        const fake = this.model.applyD(d, this.model.applyG(this.g.vars, z), { noise: this.rng });
        const lossGen = featReal
          ? featureMatchingLoss(featReal, fake.features, config.fmDistance)
          : nonSaturatingGeneratorLoss(fake.logits);
        kept.push(tf.keep(lossGen)); // logged without the HA penalty and the pull-away term, as D's losses
        const penalty = this.historicalPenalty(this.haG);
        const spread = config.pullAway > 0 ? pullAwayLoss(fake.features).mul(config.pullAway) : null;
        return [penalty, spread].reduce<tf.Scalar>((l, t) => (t ? l.add(t) : l), lossGen);
      }, this.trainableVars(this.g));
      this.optG.apply(this.byParamName(this.g, grads), lr);
    });
    const loss = kept[0].dataSync()[0];
    tf.dispose(kept);
    return loss;
  }

  /** How far the run is through its plan (tail_average.ts), after the epochs and seconds so far. */
  private progress(): number {
    const { epochs, maxMinutes } = this.config;
    return runProgress(
      { epochs, maxMinutes, open: maxMinutes !== null && epochs >= MAX_EPOCHS },
      this.epoch,
      this.seconds,
    );
  }

  /** Inside the tail (tail_average.ts), after the epochs and seconds so far. */
  private inTail(): boolean {
    return this.tail !== null && this.progress() >= this.tail.start;
  }

  /** True when the tail average has anything to average. */
  private get hasTail(): boolean {
    return this.tail !== null && (this.tail.samples > 0 || this.tailWithCurrent);
  }

  /** The weight sets this run can export, the default first (weight_choice.ts). */
  private weightSets(): WeightSet[] {
    return exportCandidates(this.hasTail);
  }

  /** A weight set's tensors, and whether the caller disposes them. */
  private weightsOf(set: WeightSet): { weights: Tensors; owned: boolean } {
    if (set === 'averaged') return { weights: this.ema.averaged(), owned: true };
    if (set === 'tail' && this.tail)
      return { weights: this.tail.averaged(this.d.vars, this.tailWithCurrent), owned: true };
    return { weights: this.d.vars, owned: false };
  }

  /** Test-set metrics of the EMA weights, the current weights and (once sampled) the tail average. */
  evaluate(): {
    ema: ReturnType<typeof classificationReport>;
    current: ReturnType<typeof classificationReport>;
    tail: ReturnType<typeof classificationReport> | null;
  } {
    const test = this.data.test;
    const report = (set: WeightSet) => {
      const { weights, owned } = this.weightsOf(set);
      try {
        return classificationReport(
          test.y,
          predictClasses(this.model, weights, test, this.config.batchSize),
          test.classes,
        );
      } finally {
        if (owned) tf.dispose(Object.values(weights));
      }
    };
    return { ema: report('averaged'), current: report('current'), tail: this.hasTail ? report('tail') : null };
  }

  private checkpointPath(): string {
    return checkpointPath(this.config.out);
  }

  private failNaN(what: string, value: number): never {
    const ckpt = this.checkpointPath();
    const last = existsSync(ckpt)
      ? `the last good checkpoint is ${ckpt} (epoch ${readCheckpoint<CheckpointMeta>(ckpt).meta.epoch})`
      : 'no checkpoint was written yet';
    throw new SemiganError(
      'SEMIGAN_ERR_NAN',
      `${what} became ${value} at epoch ${this.epoch + 1}, iteration ${this.epochIter + 1}; training stopped and ${last}. Try a lower --lr.`,
    );
  }

  /** Train until `config.epochs` are done or the time budget is spent. */
  async run(): Promise<TrainResult> {
    // Back-to-back matMuls: OpenBLAS's threads stay awake, so smaller ones are worth splitting.
    setMatMulPattern('training');
    try {
      return await this.runEpochs();
    } finally {
      setMatMulPattern('sparse');
    }
  }

  private async runEpochs(): Promise<TrainResult> {
    const { config } = this;
    this.tailWithCurrent = false; // training goes on: the stored samples are the tail's state
    if (!this.data.train.features) mkdirSync(join(config.out, SAMPLES_DIR), { recursive: true });
    const clock: RunClock = {
      started: this.now(),
      secondsBefore: this.seconds,
      budgetSeconds: config.maxMinutes ? config.maxMinutes * 60 : Infinity,
      pace: new Pace(this.itersPerEpoch, this.paceMeasured),
    };
    this.pace = clock.pace;
    clock.pace.start(clock.started);
    const secondsNow = () => clock.secondsBefore + (this.now() - clock.started) / 1000;
    this.liveSeconds = secondsNow;
    const overBudget = () => secondsNow() > clock.budgetSeconds;
    let last: EpochMetrics | null = null;
    let stoppedEarly = false;
    while (this.epoch < this.plannedEpochs) {
      const wholeEpoch = this.epochIter === 0;
      const epoch = await this.runEpoch(clock, secondsNow, overBudget);
      this.seconds = secondsNow();
      if (epoch.stoppedEarly) {
        epoch.progress.done(
          `epoch ${this.epoch + 1}: time budget of ${config.maxMinutes} min spent after ${this.epochIter}/${this.itersPerEpoch} iterations`,
        );
        stoppedEarly = true;
        break;
      }
      last = await this.endEpoch(epoch);
      clock.pace.epochDone(this.now(), wholeEpoch);
      this.replan(clock.pace, secondsNow());
      // Also at epoch boundaries: an epoch of one iteration never stops mid-epoch.
      if (this.epoch < this.plannedEpochs && overBudget()) {
        this.io.log(`time budget of ${config.maxMinutes} min spent after epoch ${this.epoch}`);
        stoppedEarly = true;
        break;
      }
    }
    // finish() writes the last checkpoint (with the export choice), mid-epoch or not.
    try {
      return await this.finish(last, stoppedEarly);
    } finally {
      this.liveSeconds = null;
      this.paceMeasured = clock.pace.measured;
      this.pace = null;
    }
  }

  /** The iterations left in the current epoch (all of them, unless the time budget runs out). */
  private async runEpoch(clock: RunClock, secondsNow: () => number, overBudget: () => boolean): Promise<EpochRun> {
    const { config } = this;
    const bs = config.batchSize;
    if (this.epochIter === 0 || !this.orders) this.orders = this.newOrders();
    const orders = this.orders;
    const before = this.epochIter > 0 ? this.partialEpoch : null;
    const run: EpochRun = {
      lr: this.lrNow(),
      started: this.now(),
      secondsBefore: before?.seconds ?? 0,
      sums: before ? { ...before.sums } : { loss_lab: 0, loss_unl: 0, loss_gen: 0, train_err: 0 },
      progress: createProgress({
        total: this.itersPerEpoch,
        label: `epoch ${this.epoch + 1}${this.plannedText()}`,
        stream: this.io.progressStream,
        suffix: (i, perIt) => this.timeLeftText(clock, secondsNow, i, perIt),
      }),
      stoppedEarly: false,
    };
    this.epochRun = run;
    const checkpointEveryMs = config.checkpointMinutes * 60_000;
    while (this.epochIter < this.itersPerEpoch) {
      const at = this.epochIter * bs;
      const ub = this.unlabeledBatch;
      const lr = this.lrNow();
      if (this.timePlanned) this.lrCeiling = lr;
      run.lr = lr;
      await this.readAhead(orders);
      const { lossLab, lossUnl, trainErr } = this.stepD(
        orders.lab.subarray(at, at + bs),
        orders.unl.subarray(this.epochIter * ub, (this.epochIter + 1) * ub),
        lr,
      );
      if (!Number.isFinite(lossLab)) this.failNaN('loss_lab', lossLab);
      if (!Number.isFinite(lossUnl)) this.failNaN('loss_unl', lossUnl);
      const lrG = config.lrG === null ? lr : (lr * config.lrG) / config.lr; // the same schedule, G's own scale
      const lossGen = config.mode === 'gan' ? this.stepG(orders.unl2.subarray(at, at + bs), lrG) : 0;
      if (!Number.isFinite(lossGen)) this.failNaN('loss_gen', lossGen);
      this.epochIter++;
      this.step++;
      run.sums.loss_lab += lossLab;
      run.sums.loss_unl += lossUnl;
      run.sums.loss_gen += lossGen;
      run.sums.train_err += trainErr;
      run.progress.tick(this.epochIter, { loss_lab: lossLab, loss_unl: lossUnl, loss_gen: lossGen });
      this.io.onIteration?.(this.epoch + 1, this.epochIter, lr);
      clock.pace.stepDone(this.now());
      if (clock.pace.provisional && clock.pace.samples === PACE_WARMUP_STEPS) this.replan(clock.pace, secondsNow());
      if (overBudget() && this.epochIter < this.itersPerEpoch) {
        run.stoppedEarly = true;
        break;
      }
      if (this.now() - this.lastCheckpointAt > checkpointEveryMs && this.epochIter < this.itersPerEpoch)
        await this.saveCheckpoint();
    }
    return run;
  }

  /**
   * The whole run's time left, for the progress line: what the budget has left, or this epoch's
   * rest plus the later epochs at the measured pace (null before any pace is known).
   */
  private timeLeftText(clock: RunClock, secondsNow: () => number, i: number, perIt: number): string | null {
    if (Number.isFinite(clock.budgetSeconds))
      return `budget ${formatDuration(clock.budgetSeconds - secondsNow())} left`;
    const epochSeconds = clock.pace.epochSeconds();
    if (epochSeconds === null || !Number.isFinite(perIt)) return null;
    const later = this.plannedEpochs - this.epoch - 1;
    if (later <= 0) return null; // the epoch's own ETA says it
    return `run ${formatDuration(perIt * (this.itersPerEpoch - i) + later * epochSeconds)} left`;
  }

  /** A finished epoch: evaluate, log, append its metrics, checkpoint, draw samples. */
  private async endEpoch(run: EpochRun): Promise<EpochMetrics> {
    const { config } = this;
    const itersRun = this.epochIter;
    const epochSeconds = run.secondsBefore + (this.now() - run.started) / 1000;
    this.epoch++;
    this.epochIter = 0;
    if (this.inTail()) this.tail!.add(this.d.vars);
    const { ema, current, tail } = this.evaluate();
    this.peakRss = Math.max(this.peakRss, process.memoryUsage().rss);
    const n = Math.max(1, itersRun);
    const metrics: EpochMetrics = {
      epoch: this.epoch,
      step: this.step,
      lr: run.lr,
      loss_lab: run.sums.loss_lab / n,
      loss_unl: run.sums.loss_unl / n,
      loss_gen: run.sums.loss_gen / n,
      train_err: run.sums.train_err / n,
      test_acc: ema.accuracy,
      test_errors: ema.errors,
      test_acc_current: current.accuracy,
      test_errors_current: current.errors,
      ...(tail ? { test_acc_tail: tail.accuracy, test_errors_tail: tail.errors } : {}),
      n_test: ema.n,
      epoch_seconds: epochSeconds,
      seconds: this.seconds,
      rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
    };
    run.progress.done(
      `epoch ${this.epoch}${this.plannedText()}  lr ${run.lr.toPrecision(3)}  test acc ${(100 * ema.accuracy).toFixed(2)}% (${ema.errors} errors, EMA)  ` +
        `${(100 * current.accuracy).toFixed(2)}% (current)${tail ? `  ${(100 * tail.accuracy).toFixed(2)}% (tail average of ${this.tail!.samples})` : ''}  ${epochSeconds.toFixed(1)}s`,
    );
    // Metrics first, then the checkpoint: a kill in between re-runs the epoch, and resume
    // drops metrics lines beyond the checkpoint's epoch.
    appendMetrics(config.out, metrics);
    await writeCurvesPng(join(config.out, CURVES_FILE), {
      name: basename(config.out),
      metrics: readMetrics(config.out),
    });
    await this.saveCheckpoint();
    // Tabular rows have no picture; their samples are G's standardized feature vectors.
    if (config.mode === 'gan' && !this.data.train.features)
      await this.writeSamples(join(config.out, SAMPLES_DIR, `epoch-${String(this.epoch).padStart(3, '0')}.png`));
    return metrics;
  }

  /**
   * The validation rows' logits under either weight set, for the export choice; null without
   * --val. Only `data.train` rows listed in `data.val` are read: never the test set.
   */
  validationLogits(): ValidationLogits | null {
    const rows = this.data.val;
    if (!rows?.length) return null;
    return validationLogitsOf(this.model, (set) => this.weightsOf(set), this.data.train, rows, this.config.batchSize);
  }

  /** Choose the exported weights and temperature, and record them with the run's last checkpoint. */
  private async chooseExport(): Promise<ExportChoice> {
    const choice = chooseExport(this.validationLogits(), this.weightSets());
    this.exportChoice = choice;
    await this.saveCheckpoint();
    recordExportChoice(this.config.out, choice);
    this.io.log(
      `export: the ${WEIGHT_SET_NAMES[choice.weights]} weights, temperature ${choice.temperature.toPrecision(3)} (${choice.reason})`,
    );
    return choice;
  }

  /** result.json from the last epoch's metrics (or a fresh evaluation when the budget cut an epoch short). */
  private async finish(last: EpochMetrics | null, stoppedEarly: boolean): Promise<TrainResult> {
    // A budget that ends mid-epoch: the weights it ends with count in the tail average.
    this.tailWithCurrent = this.epochIter > 0 && this.inTail();
    const final =
      last && this.epochIter === 0
        ? {
            ema: { accuracy: last.test_acc, errors: last.test_errors, n: last.n_test },
            current: { accuracy: last.test_acc_current, errors: last.test_errors_current },
            tail:
              last.test_errors_tail === undefined
                ? null
                : { accuracy: last.test_acc_tail!, errors: last.test_errors_tail },
          }
        : this.evaluate();
    this.peakRss = Math.max(this.peakRss, process.memoryUsage().rss);
    const choice = await this.chooseExport();
    const result: TrainResult = {
      accuracy: final.ema.accuracy,
      errors: final.ema.errors,
      n: final.ema.n,
      epochs: this.epoch + this.epochIter / this.itersPerEpoch,
      seconds: Math.round(this.seconds * 10) / 10,
      stoppedEarly,
      accuracyCurrent: final.current.accuracy,
      errorsCurrent: final.current.errors,
      ...(final.tail ? { accuracyTail: final.tail.accuracy, errorsTail: final.tail.errors } : {}),
      step: this.step,
      peakRssMb: Math.round(this.peakRss / 2 ** 20),
      out: this.config.out,
      weights: choice.weights,
      errorsExported: { averaged: final.ema, current: final.current, tail: final.tail ?? final.ema }[choice.weights]
        .errors,
      temperature: choice.temperature,
      weightsReason: choice.reason,
    };
    writeResult(this.config.out, result);
    return result;
  }

  /** 10x10 grid from a fixed z (same z every epoch, so grids are comparable). */
  async writeSamples(path: string): Promise<void> {
    const pixels = generateImages(this.model, this.g.vars, 100, this.config.seed + SAMPLE_SEED_OFFSET);
    await writeImageGrid(path, pixels, this.data.train.shape, { rows: 10, cols: 10, scale: SAMPLE_SCALE });
  }

  /** Every variable record of the training state under its checkpoint prefix. */
  private stateVariables(): [string, Record<string, tf.Variable>][] {
    const records: [string, Record<string, tf.Variable>][] = [
      ['d', this.d.vars],
      ['g', this.g.vars],
      ['ema', this.ema.shadow],
      ['adamD.m', this.optD.state.m],
      ['adamD.v', this.optD.state.v],
      ['adamG.m', this.optG.state.m],
      ['adamG.v', this.optG.state.v],
    ];
    if (this.haD && this.haG) records.push(['haD', this.haD.mean], ['haG', this.haG.mean]);
    if (this.tail) records.push(['tail', this.tail.mean]);
    return records;
  }

  checkpoint(): Checkpoint<CheckpointMeta> {
    const tensors: Record<string, StoredTensor> = {};
    for (const [prefix, rec] of this.stateVariables()) {
      for (const [n, t] of Object.entries(rec)) tensors[`${prefix}/${n}`] = toStored(t);
    }
    if (this.epochIter > 0 && this.orders) {
      for (const [n, a] of Object.entries(this.orders)) tensors[`orders/${n}`] = { shape: [a.length], data: a };
    }
    const meta: CheckpointMeta = {
      semigan: SEMIGAN_VERSION,
      config: this.config,
      data: this.data.summary,
      classes: this.data.train.classes,
      inputShape: this.data.train.shape,
      epoch: this.epoch,
      epochIter: this.epochIter,
      step: this.step,
      rng: this.rng.getState(),
      adamD: this.optD.state.t,
      adamG: this.optG.state.t,
      emaSteps: this.ema.steps,
      haSteps: this.haD?.count ?? 0,
      ...(this.tail ? { tailSamples: this.tail.samples } : {}),
      ...(this.tailWithCurrent ? { tailWithCurrent: true } : {}),
      seconds: this.liveSeconds?.() ?? this.seconds, // all of it, the epoch in progress included
      plannedEpochs: this.plannedEpochs,
      ...(Number.isFinite(this.lrCeiling) ? { lrCeiling: this.lrCeiling } : {}),
      paceSeconds: this.pace?.measured ?? this.paceMeasured,
      ...(this.exportChoice ? { exportChoice: this.exportChoice } : {}),
      ...(this.epochIter > 0 && this.epochRun
        ? {
            partialEpoch: {
              sums: { ...this.epochRun.sums },
              seconds: this.epochRun.secondsBefore + (this.now() - this.epochRun.started) / 1000,
            },
          }
        : {}),
    };
    return { meta, tensors };
  }

  async saveCheckpoint(): Promise<void> {
    const path = this.checkpointPath();
    try {
      await writeCheckpoint(path, this.checkpoint());
    } catch (e) {
      if (!isFsError(e)) throw e;
      // Advice that works: --resume needs a checkpoint; without one the run starts over.
      const next = existsSync(path)
        ? `the previous checkpoint (epoch ${readCheckpoint<CheckpointMeta>(path).meta.epoch}) is intact: fix that, then continue with --resume ${this.config.out}`
        : `no checkpoint was written before, so there is nothing to resume: fix that, then start the run again with --overwrite`;
      throw new SemiganError(
        'SEMIGAN_ERR_RUN_DIR',
        `${path}: writing the checkpoint failed (${describeFsError(e)}); ${next}`,
      );
    }
    this.lastCheckpointAt = this.now();
  }

  /** Put every saved tensor and counter back (the inverse of checkpoint()). */
  restore(ckpt: Checkpoint<CheckpointMeta>): void {
    for (const [prefix, rec] of this.stateVariables()) {
      for (const [n, v] of Object.entries(rec)) {
        const s = ckpt.tensors[`${prefix}/${n}`];
        if (!s)
          throw new SemiganError(
            'SEMIGAN_ERR_RUN_DIR',
            `checkpoint lacks ${prefix}/${n}: it was written by another model or version`,
          );
        tf.tidy(() => v.assign(tf.tensor(s.data, s.shape))); // tidy frees the temporary (the variable keeps the data)
      }
    }
    if (this.haD && this.haG) this.haD.count = this.haG.count = ckpt.meta.haSteps ?? 0;
    if (this.tail) this.tail.samples = ckpt.meta.tailSamples ?? 0;
    const m = ckpt.meta;
    this.epoch = m.epoch;
    this.epochIter = m.epochIter;
    this.step = m.step;
    this.seconds = m.seconds;
    // A time plan continues as planned (re-estimated at the next epoch's end); an epoch plan is --epochs.
    this.paceMeasured = m.paceSeconds ?? [];
    this.lrCeiling = m.lrCeiling ?? Infinity;
    this.plannedEpochs = this.timePlanned
      ? Math.min(m.plannedEpochs ?? this.config.epochs, this.config.epochs)
      : this.config.epochs;
    this.rng = Rng.fromState(m.rng);
    this.optD.state.t = m.adamD;
    this.optG.state.t = m.adamG;
    this.ema.steps = m.emaSteps;
    this.partialEpoch = m.partialEpoch ?? null;
    const o = (n: string) => ckpt.tensors[`orders/${n}`]?.data as Int32Array | undefined;
    this.orders = m.epochIter > 0 && o('lab') ? { lab: o('lab')!, unl: o('unl')!, unl2: o('unl2')! } : null;
  }

  /** Drop metrics lines beyond the restored epoch (written just before a kill). */
  trimMetrics(): void {
    trimMetrics(this.config.out, this.epoch);
  }

  dispose(): void {
    disposeParams(this.d);
    disposeParams(this.g);
    this.optD.dispose();
    this.optG.dispose();
    this.ema.dispose();
    this.tail?.dispose();
    this.haD?.dispose();
    this.haG?.dispose();
  }
}

export type { Tensors };
