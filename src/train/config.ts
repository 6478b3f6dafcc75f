import { configError } from '../errors.js';
import { D_HEADS, PAPER_TECHNIQUES, type ModelTechniques } from '../models/model.js';
import type { LoadOptions } from '../data/load.js';
import { DATA_STORES } from '../data/images/store_plan.js';
import { BACKENDS, MATMULS, type BackendChoice, type MatMulChoice } from '../backend.js';
import { SCHEDULES, type ScheduleName } from './schedule.js';

export const MODES = ['gan', 'supervised'] as const;
export type Mode = (typeof MODES)[number];
export const FM_DISTANCES = ['l2', 'l1'] as const;
export type FmDistance = (typeof FM_DISTANCES)[number];

/**
 * Everything that defines a training run. Validated once (validateConfig), frozen, written to
 * the run dir and into every checkpoint. Defaults are the paper's MNIST recipe.
 */
export interface TrainConfig extends ModelTechniques, LoadOptions {
  preset: string; // model preset (auto: chosen from the data, models/presets.ts autoPreset)
  // The data fields (dataset, labels, test, size, ...) are LoadOptions' and DataOptions'.
  mode: Mode; // gan: K+1 GAN on labeled + unlabeled + generated data; supervised: same D on the labeled set only
  // The paper's five techniques (docs/techniques.md); defaults = its MNIST recipe (feature matching
  // only). Those that change the networks (fmLayer, mbd, mbdKernels, mbdDim, vbn, dNoise, dWidths, gWidths, dDropout, dHead) are ModelTechniques.
  fm: boolean; // feature matching for G; off: G minimizes the non-saturating -log D(G(z))
  fmDistance: FmDistance; // l2: mean squared difference of mean features (MNIST recipe); l1: mean absolute (CIFAR)
  ha: number; // historical averaging weight for D and G (0 = off)
  labelSmoothing: number; // one-sided: real target of the real/fake part (1 = off; paper: 0.9)
  // Beyond the paper (docs/techniques.md); 0 = off, the paper's recipe.
  consistency: number; // CT-GAN: weight of D's consistency on the unlabeled batch passed twice
  entropy: number; // Bad GAN: weight of D's conditional entropy on unlabeled data (minimized)
  vat: number; // VAT (Miyato et al.): weight of KL(p(x) || p(x + r_adv)) on the unlabeled rows (0 = off)
  vatEps: number; // VAT: L2 norm of the adversarial perturbation r_adv (the VAT paper's MNIST: 2.0)
  rampUp: number; // consistency and entropy weights rise as exp(-5 (1 - p / rampUp)^2) over this share of the plan (0 = full from the start)
  pullAway: number; // Bad GAN / EBGAN: weight of the pull-away term on G's sample features
  // The image track (not permutation-invariant): random shifts of the labeled batch and of the
  // consistency term's second look at the unlabeled rows (data/augment.ts).
  augment: number; // largest shift in pixels (0 = off)
  augmentFlip: boolean; // also mirror left-right at random (off: digits and letters are not symmetric)
  epochs: number; // total epochs (paper: 300); with --max-minutes a cap (default: none)
  itersPerEpoch: number | null; // default: unlabeled examples / batch size (600 on MNIST)
  batchSize: number; // per source: labeled, unlabeled and generated each get this many rows
  unlabeledBatch: number | null; // unlabeled rows in D's step (VAT: 250 beside 100 labeled); null: batchSize
  lr: number; // Adam learning rate (paper MNIST: 0.003); D's, and G's unless lrG is set
  lrG: number | null; // G's learning rate (Bad GAN: 1e-3 with D's 3e-3); null: --lr
  beta1: number; // Adam beta1 (0.5: GAN-stable)
  beta2: number;
  lrDecayStart: number | null; // legacy: from this epoch on, lr decays linearly to 0 at `epochs` (per epoch)
  schedule: ScheduleName; // lr over the planned length (--epochs, or the --max-minutes budget): train/schedule.ts
  lrTail: number; // linear-tail: the share of the plan over which the lr falls to 0
  emaDecay: number; // decay of the weight average that is evaluated and exported
  recipe: RecipeName; // a named set of the options below (explicit options win)
  emaWarmup: boolean; // decay of update t: min(emaDecay, (1 + t) / (10 + t)) (off: emaDecay throughout, the official code)
  tailAverage: number | null; // also average D uniformly over the plan's last share from this point on (train/tail_average.ts); null: off
  unlabeledWeight: number; // weight of the unsupervised loss in D's objective
  initSize: number; // training images for D's data-dependent init (paper: 500)
  seed: number; // parameter init, noise, minibatch order
  out: string; // run directory
  backend: BackendChoice;
  threads: number | null; // wasm: threads for matMuls (null: every core); native TensorFlow picks its own
  matmul: MatMulChoice; // wasm: OpenBLAS matMuls when built (auto), or tfjs's own single-threaded kernels (wasm)
  maxMinutes: number | null; // the run's training-time budget (all invocations); with a schedule, the plan's length
  checkpointMinutes: number; // also checkpoint mid-epoch when the last checkpoint is this old
}

export const DEFAULT_CONFIG: TrainConfig = {
  dataset: 'mnist',
  test: null,
  testSplit: null,
  size: null,
  channels: null,
  background: 'black',
  unlabeledDir: 'unlabeled',
  labelColumn: null,
  features: null,
  dropColumns: [],
  skipBad: false,
  cache: true,
  dataStore: 'auto',
  imageColumn: null,
  dataDir: null,
  labels: 100,
  labelsPerClass: null,
  val: null,
  trainLimit: null,
  testLimit: null,
  preset: 'auto',
  mode: 'gan',
  fm: true,
  fmDistance: 'l2',
  ...PAPER_TECHNIQUES,
  ha: 0,
  labelSmoothing: 1,
  consistency: 0,
  entropy: 0,
  pullAway: 0,
  augment: 0,
  augmentFlip: false,
  epochs: 10,
  itersPerEpoch: null,
  batchSize: 100,
  lr: 0.003,
  lrG: null,
  unlabeledBatch: null,
  rampUp: 0,
  vat: 0,
  vatEps: 2,
  beta1: 0.5,
  beta2: 0.999,
  lrDecayStart: null,
  schedule: 'constant',
  lrTail: 1 / 3,
  emaDecay: 0.9999,
  recipe: 'paper',
  emaWarmup: false,
  tailAverage: null,
  unlabeledWeight: 1,
  initSize: 500,
  seed: 1,
  seedData: 1,
  out: 'runs/latest',
  backend: 'auto',
  threads: null,
  matmul: 'auto',
  maxMinutes: null,
  checkpointMinutes: 10,
};

/**
 * Named recipes (docs/techniques.md, "Recipes"). `paper` is the 2016 paper's, exactly as before
 * recipes existed; `ct` adds CT-GAN's consistency term, Bad GAN's conditional entropy and an
 * averaging warm-up, the combination that measured best (docs/benchmarks.md). Options given
 * explicitly override a recipe's.
 */
export const RECIPES = {
  paper: {},
  ct: { consistency: 0.1, entropy: 0.1, emaWarmup: true },
  // ct over a plan: flat lr for two thirds, then linear to 0 (Bad GAN's and Ladder's shape).
  'ct-tail': { consistency: 0.1, entropy: 0.1, emaWarmup: true, schedule: 'linear-tail' },
} as const satisfies Record<string, Partial<Record<string, unknown>>>;
export type RecipeName = keyof typeof RECIPES;
/** The recipe of `train --max-minutes M` when no --recipe is given: the best measured in a 2-hour budget (docs/benchmarks.md §11). */
export const BUDGET_RECIPE: RecipeName = 'paper';

/** Far beyond any real run (the paper's is 300 epochs), but a typo such as 1e20 is caught. */
export const MAX_EPOCHS = 100_000;
/** Seeds are 32-bit (the RNG's state); a larger integer would lose digits silently. */
export const MAX_SEED = 2 ** 32 - 1;

type Check = (v: unknown) => string | null; // null = ok, else what was expected

const positiveInt: Check = (v) => (Number.isInteger(v) && (v as number) > 0 ? null : 'a positive integer');
const nonNegInt: Check = (v) => (Number.isInteger(v) && (v as number) >= 0 ? null : 'a non-negative integer');
const positiveNum: Check = (v) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? null : 'a positive number');
const unit: Check = (v) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'a number in [0, 1)');
const nonNeg: Check = (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? null : 'a non-negative number');
const str: Check = (v) => (typeof v === 'string' && v.length > 0 ? null : 'a non-empty string');
const oneOf =
  (xs: readonly string[]): Check =>
  (v) =>
    xs.includes(v as string) ? null : `one of ${xs.join(', ')}`;
const nullable =
  (c: Check): Check =>
  (v) =>
    v === null ? null : c(v);
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'true or false');
const upTo =
  (max: number, c: Check): Check =>
  (v) =>
    c(v) ?? ((v as number) <= max ? null : `at most ${max}`);
const integer: Check = (v) => (Number.isInteger(v) ? null : 'an integer');
const smoothing: Check = (v) =>
  typeof v === 'number' && v > 0 && v <= 1 ? null : 'a number in (0, 1] (1 = no smoothing)';

const fraction: Check = (v) => (typeof v === 'number' && v > 0 && v < 1 ? null : 'a fraction in (0, 1)');
const strList: Check = (v) =>
  Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0) ? null : 'a list of column names';
const noisePair: Check = (v) =>
  Array.isArray(v) && v.length === 2 && v.every((s) => typeof s === 'number' && Number.isFinite(s) && s >= 0)
    ? null
    : 'two non-negative numbers INPUT,HIDDEN (noise std on the input and after each hidden layer)';
const widthList: Check = (v) =>
  Array.isArray(v) && v.length >= 1 && v.length <= 16 && v.every((n) => Number.isInteger(n) && n >= 1 && n <= 16384)
    ? null
    : 'a comma-separated list of 1 to 16 layer widths, each an integer in [1, 16384]';
const dropoutPair: Check = (v) =>
  Array.isArray(v) && v.length === 2 && v.every((r) => typeof r === 'number' && r >= 0 && r < 1)
    ? null
    : 'two dropout rates INPUT,HIDDEN, each in [0, 1)';
const channelCount: Check = (v) => (v === 1 || v === 3 ? null : '1 or 3');

const CHECKS: Record<keyof TrainConfig, Check> = {
  dataset: str,
  test: nullable(str),
  testSplit: nullable(fraction),
  size: nullable(str),
  channels: nullable(channelCount),
  background: str,
  unlabeledDir: str,
  labelColumn: nullable(str),
  features: nullable(strList),
  dropColumns: strList,
  skipBad: bool,
  cache: bool,
  dataStore: oneOf(DATA_STORES),
  imageColumn: nullable(str),
  dataDir: nullable(str),
  labels: nullable(positiveInt),
  labelsPerClass: nullable(positiveInt),
  val: nullable(positiveInt),
  trainLimit: nullable(positiveInt),
  testLimit: nullable(positiveInt),
  preset: str,
  mode: oneOf(MODES),
  fm: bool,
  fmDistance: oneOf(FM_DISTANCES),
  fmLayer: integer,
  mbd: bool,
  mbdKernels: positiveInt,
  mbdDim: positiveInt,
  ha: nonNeg,
  labelSmoothing: smoothing,
  consistency: nonNeg,
  entropy: nonNeg,
  pullAway: nonNeg,
  augment: upTo(8, nonNegInt),
  augmentFlip: bool,
  vbn: bool,
  dNoise: nullable(noisePair),
  dWidths: nullable(widthList),
  gWidths: nullable(widthList),
  dDropout: nullable(dropoutPair),
  dHead: nullable(oneOf(D_HEADS)),
  epochs: upTo(MAX_EPOCHS, positiveInt),
  itersPerEpoch: nullable(positiveInt),
  batchSize: positiveInt,
  lr: positiveNum,
  lrG: nullable(positiveNum),
  unlabeledBatch: nullable(positiveInt),
  vat: nonNeg,
  vatEps: positiveNum,
  rampUp: (v) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'a share of the plan in [0, 1)'),
  beta1: unit,
  beta2: unit,
  lrDecayStart: nullable(nonNegInt),
  schedule: oneOf(SCHEDULES),
  lrTail: (v) => (typeof v === 'number' && v > 0 && v <= 1 ? null : 'a fraction in (0, 1]'),
  emaDecay: unit,
  recipe: oneOf(Object.keys(RECIPES)),
  emaWarmup: bool,
  tailAverage: nullable(fraction),
  unlabeledWeight: nonNeg,
  initSize: positiveInt,
  seed: upTo(MAX_SEED, nonNegInt),
  seedData: upTo(MAX_SEED, nonNegInt),
  out: str,
  backend: oneOf(BACKENDS),
  threads: nullable(positiveInt),
  matmul: oneOf(MATMULS),
  maxMinutes: nullable(positiveNum),
  checkpointMinutes: positiveNum,
};

/** Kebab-case flag name for error messages (`labelsPerClass` -> `--labels-per-class`). */
export const flagName = (key: string) => '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** Reject unknown keys and wrong types (naming the flag, expectation and value); return a frozen config. */
export function validateConfig(partial: Record<string, unknown>): Readonly<TrainConfig> {
  for (const key of Object.keys(partial)) {
    if (!(key in CHECKS)) throw configError(`unknown option ${flagName(key)}`);
  }
  // A time budget without a recipe gets the recipe measured best for budgets (docs/benchmarks.md).
  if (partial.recipe === undefined && partial.maxMinutes != null) partial = { ...partial, recipe: BUDGET_RECIPE };
  const recipe = partial.recipe === undefined ? {} : RECIPES[partial.recipe as RecipeName];
  if (!recipe)
    throw configError(
      `--recipe must be one of ${Object.keys(RECIPES).join(', ')}; received ${JSON.stringify(partial.recipe)}`,
    );
  const config = { ...DEFAULT_CONFIG, ...recipe, ...partial } as TrainConfig;
  if ((config.mode as string) === 'fm') config.mode = 'gan'; // name used by semigan 0.1 runs
  // Vary both seeds together unless told otherwise (the official code's README says to vary both).
  if (partial.seedData === undefined) config.seedData = config.seed;
  // With a time budget and no --epochs, the budget alone decides the run's length.
  if (partial.maxMinutes != null && partial.epochs === undefined) config.epochs = MAX_EPOCHS;
  // --labels-per-class alone replaces the default --labels rather than conflicting with it.
  if (partial.labelsPerClass != null && partial.labels === undefined) config.labels = null;
  // Your own data: every label given is used unless --labels says otherwise (the 100 is MNIST's).
  if (
    partial.labels === undefined &&
    partial.labelsPerClass === undefined &&
    /^(images|manifest|csv):/.test(String(config.dataset))
  )
    config.labels = null;
  for (const [key, check] of Object.entries(CHECKS) as [keyof TrainConfig, Check][]) {
    const expected = check(config[key]);
    if (expected) throw configError(`${flagName(key)} must be ${expected}; received ${JSON.stringify(config[key])}`);
  }
  if (config.labels !== null && config.labelsPerClass !== null) {
    throw configError('give either --labels (total) or --labels-per-class, not both');
  }
  if (config.augmentFlip && config.augment === 0)
    throw configError('--augment-flip needs --augment N (the largest shift in pixels; 0 turns augmentation off)');
  if (config.lrDecayStart !== null && config.schedule !== 'constant') {
    throw configError(
      `--lr-decay-start sets its own decay; it cannot be combined with --schedule ${config.schedule} (use --lr-tail for the decay's share of the plan)`,
    );
  }
  if (config.lrDecayStart !== null && config.lrDecayStart >= config.epochs) {
    throw configError(`--lr-decay-start must be below --epochs (${config.epochs}); received ${config.lrDecayStart}`);
  }
  return Object.freeze(config);
}
