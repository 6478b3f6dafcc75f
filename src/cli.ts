#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { SemiganError } from './errors.js';
import { describeFsError, isFsError } from './fsutil.js';
import { BACKENDS, defaultThreads, MATMULS } from './backend.js';
import { BUILTIN_DATASETS } from './data/sources/builtin.js';
import { absoluteSpec, SPEC_HELP } from './data/sources/spec.js';
import { DEFAULT_TEST_SPLIT } from './data/load.js';
import { DATA_STORES } from './data/images/store_plan.js';
import { DEFAULT_MEMORY_BYTES } from './data/images/decode.js';
import { PRESET_NAMES } from './models/presets.js';
import { D_HEADS } from './models/model.js';
import { DEFAULT_CONFIG, FM_DISTANCES, MODES, RECIPES, type TrainConfig } from './train/config.js';
import { SCHEDULES } from './train/schedule.js';
import { SEMIGAN_VERSION } from './version.js';
import { trainCommand } from './commands/train.js';
import { reportCommand } from './commands/report.js';
import { evaluateCommand } from './commands/evaluate.js';
import { exportCommand } from './commands/export.js';
import { EXPORT_FORMATS } from './export/exporter.js';
import { ENGINES } from './export/engine.js';
import { formatPredictions, predictCommand } from './commands/predict.js';
import { DEFAULT_SERVE_OPTIONS as sd, parseSize, serveCommand } from './commands/serve.js';
import { sweepCommand, sweepReport } from './commands/sweep.js';
import { formatSummary, parseSeeds } from './train/sweep_summary.js';
import { formatReport } from './eval/report.js';
import { formatSuggestions, suggestCommand } from './commands/suggest.js';
import { calibrateCommand } from './commands/calibrate.js';
import { SUGGEST_CRITERIA } from './eval/suggest.js';
import { formatInspect, inspectData } from './commands/inspect.js';

const int = (v: string) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(v);
};
const signedInt = (v: string) => {
  if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError('expected an integer.');
  return Number(v);
};
const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
const num = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
};

const numPair = (v: string) => {
  const xs = v.split(',').map((s) => s.trim());
  if (xs.length !== 2 || xs.some((s) => s === '' || !Number.isFinite(Number(s))))
    throw new InvalidArgumentError('expected two numbers separated by a comma, e.g. 0.3,0.5.');
  return xs.map(Number);
};

const intList = (v: string) => {
  const xs = v.split(',').map((s) => s.trim());
  if (xs.some((s) => !/^\d+$/.test(s)))
    throw new InvalidArgumentError('expected positive integers separated by commas, e.g. 32,64,64,128.');
  return xs.map(Number);
};

const threadsArg = (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 256)
    throw new InvalidArgumentError(
      `expected a positive integer from 1 to 256 (threads for matMuls; this machine has ${defaultThreads()} cores).`,
    );
  return Number(v);
};
const matmulOption = () =>
  new Option(
    '--matmul <kernels>',
    "wasm backend's matMuls: auto (OpenBLAS on --threads when built), openblas, or wasm (tfjs's own, one thread: bit-exact with earlier runs)",
  )
    .choices(MATMULS)
    .default('auto');
const threadsOption = (what: string) =>
  new Option('--threads <n>', `threads for matMuls on the wasm backend (default: ${what})`).argParser(threadsArg);

const program = new Command('semigan')
  .description('Semi-supervised classification with GANs (Salimans et al. 2016)')
  .version(SEMIGAN_VERSION)
  .showHelpAfterError('(run with --help for usage)');

const d = DEFAULT_CONFIG;
program
  .command('train')
  .description('train a K+1-class discriminator (and its generator) on partially labeled data')
  .option('--data <spec>', `training data: ${SPEC_HELP}`, d.dataset)
  .addOption(new Option('--dataset <name>', 'same as --data (the older name, still accepted)'))
  .option('--data-dir <dir>', 'built-in datasets: folder holding the four idx files (overrides the built-in location)')
  .option('--test <spec>', 'your own data: the test set (same kind and classes as --data)')
  .option(
    '--test-split <fraction>',
    `your own data: hold out this fraction of each class's labeled examples for testing (default ${DEFAULT_TEST_SPLIT} when no --test)`,
    num,
  )
  .option('--size <HxW>', 'images: resize to HEIGHTxWIDTH (default: the most common size found)')
  .option('--channels <n>', 'images: 1 (grayscale) or 3 (RGB) (default: the most common found)', int)
  .option(
    '--background <color>',
    'images: colour under transparent pixels and padding: black, white, #rrggbb or r,g,b',
    d.background,
  )
  .option('--unlabeled-dir <name>', 'images:DIR: subfolder of unlabeled images', d.unlabeledDir)
  .option(
    '--label-column <name>',
    'csv, parquet: column holding the class (empty = unlabeled; parquet default: label, if present)',
  )
  .option(
    '--image-column <name>',
    'parquet: column holding the encoded images, or {bytes, path} structs (default: image)',
  )
  .option('--features <names>', 'csv: comma-separated feature columns to use (default: all but the label)', list)
  .option('--drop-columns <names>', 'csv: comma-separated columns to leave out', list)
  .option('--skip-bad', 'skip unreadable images and bad CSV rows (counted and named) instead of stopping')
  .option(
    '--no-cache',
    'images: decode again instead of using the decode cache ($SEMIGAN_CACHE_DIR or ~/.cache/semigan)',
  )
  .option(
    '--data-store <where>',
    `images: hold decoded pixels in memory, or read them from the decode cache on disk a batch at a time: ${DATA_STORES.join(', ')} (auto: memory up to ${DEFAULT_MEMORY_BYTES / 2 ** 20} MiB of pixels)`,
    d.dataStore,
  )
  .option(
    '--labels <n>',
    'use only N labeled examples in total, split evenly over classes (built-in datasets: default 100; your own data: default all labels)',
    int,
  )
  .option('--labels-per-class <n>', 'use only N labeled examples per class (instead of --labels)', int)
  .option('--train-limit <n>', 'use only the first N training images (quick runs)', int)
  .option('--test-limit <n>', 'evaluate on the first N test images only', int)
  .option('--preset <name>', `model preset: ${PRESET_NAMES.join(', ')}`, d.preset)
  .addOption(
    new Option(
      '--mode <mode>',
      'gan: K+1 GAN on labeled + unlabeled + generated data; supervised: labeled data only (the baseline)',
    )
      .choices(MODES)
      .default(d.mode),
  )
  .option('--no-fm', 'turn feature matching off: G minimizes the non-saturating -log D(G(z))')
  .addOption(
    new Option('--fm-distance <d>', 'feature-matching distance: l2 (MNIST recipe) or l1 (CIFAR recipe)')
      .choices(FM_DISTANCES)
      .default(d.fmDistance),
  )
  .option('--fm-layer <i>', "D's hidden layer matched by G: 0-based, negative from the last", signedInt, d.fmLayer)
  .option('--mbd', "minibatch discrimination before D's output layer")
  .option('--mbd-kernels <n>', 'minibatch discrimination kernels (B)', int, d.mbdKernels)
  .option('--mbd-dim <n>', 'minibatch discrimination kernel dimension (C)', int, d.mbdDim)
  .option('--ha <weight>', 'historical averaging weight for D and G (0 = off)', num, d.ha)
  .option(
    '--label-smoothing <alpha>',
    'one-sided label smoothing: real target alpha, e.g. 0.9 (1 = off)',
    num,
    d.labelSmoothing,
  )
  .option('--vbn', 'virtual batch normalization in G')
  .option(
    '--d-noise <input,hidden>',
    "std of D's Gaussian noise in training, on its input and after each hidden layer (default: the preset's own: mnist-mlp 0.3,0.5, tabular-mlp 0.1,0.3, conv presets none)",
    numPair,
  )
  .option(
    '--d-widths <list>',
    "D's layer widths (default: the preset's own: mnist-mlp 1000,500,250,250,250, tabular-mlp 256,128,128, conv-small's convs in stage pairs 16,32,32,64, conv-large's 2 blocks 96,192)",
    intList,
  )
  .option(
    '--g-widths <list>',
    "G's layer widths (default: the preset's own: mnist-mlp 500,500, tabular-mlp 128,128, conv-small's dense channels and middle deconv 64,32, conv-large's 512,256,128)",
    intList,
  )
  .option(
    '--d-dropout <input,hidden>',
    "conv presets: D's dropout rate on its input and before each later stage (default: the preset's own, 0.2,0.5)",
    numPair,
  )
  .addOption(
    new Option(
      '--d-head <head>',
      "conv presets: what D's output layer sees: pool (the global average of its last feature map, the default) or flatten (the whole map: it keeps where things are)",
    ).choices(D_HEADS),
  )
  .option(
    '--consistency <weight>',
    "beyond the paper (CT-GAN): D's consistency on unlabeled rows passed twice (0 = off)",
    num,
    d.consistency,
  )
  .option(
    '--entropy <weight>',
    "beyond the paper (Bad GAN): D's conditional entropy on unlabeled rows, minimized (0 = off)",
    num,
    d.entropy,
  )
  .option(
    '--pull-away <weight>',
    "beyond the paper (Bad GAN, EBGAN): G's pull-away term on its samples' features (0 = off)",
    num,
    d.pullAway,
  )
  .option(
    '--augment <pixels>',
    'image track (not permutation-invariant): shift the labeled batch and the consistency look at unlabeled rows by up to N pixels',
    int,
  )
  .option('--augment-flip', 'with --augment: also mirror images left-right at random')
  .option(
    '--val <n>',
    'labeled rows held out (same number per class) to choose the exported weights and fit a temperature; never the test set',
    int,
  )
  .option('--epochs <n>', 'epochs to train', int, d.epochs)
  .option('--iters-per-epoch <n>', 'iterations per epoch (default: unlabeled size / batch size)', int)
  .option('--batch-size <n>', 'rows per batch from each source (labeled, unlabeled, generated)', int, d.batchSize)
  .option('--lr <x>', 'Adam learning rate', num, d.lr)
  .option('--lr-g <x>', "G's learning rate, on the same schedule (default: --lr)", num)
  .option(
    '--unlabeled-batch <n>',
    "unlabeled rows in each D step (default: --batch-size); G's step keeps --batch-size",
    int,
  )
  .option(
    '--vat <weight>',
    "beyond the paper (VAT): D's KL(p(x) || p(x + r_adv)) on unlabeled rows, r_adv its most sensitive direction (0 = off)",
    num,
  )
  .option('--vat-eps <x>', "VAT: the perturbation's L2 norm (default 2, the VAT paper's MNIST)", num)
  .option(
    '--ramp-up <share>',
    'consistency and entropy weights rise as exp(-5 (1 - p/share)^2) over this share of the plan (0: off)',
    num,
  )
  .option('--beta1 <x>', 'Adam beta1', num, d.beta1)
  .addOption(
    new Option(
      '--schedule <name>',
      'lr over the planned length (--epochs, or the --max-minutes budget): constant, linear-tail (flat, then linear to 0), cosine',
    ).choices(SCHEDULES),
  )
  .option('--lr-tail <x>', 'linear-tail: share of the plan over which the lr falls to 0 (default 1/3)', num)
  .option('--lr-decay-start <epoch>', 'legacy: decay lr linearly to 0 from this epoch to --epochs', int)
  .option('--ema-decay <x>', 'decay of the weight average that is evaluated and exported', num, d.emaDecay)
  .option(
    '--ema-warmup',
    'average with decay min(--ema-decay, (1 + t) / (10 + t)) at update t: early averages follow recent weights',
  )
  .option(
    '--tail-average <share>',
    "also average D's weights uniformly from this share of the plan on (e.g. 0.5: the last half; one sample per epoch); exported unless --val prefers another set",
    num,
  )
  .addOption(
    new Option(
      '--recipe <name>',
      'paper: the 2016 paper (default); ct: + consistency 0.1, entropy 0.1, --ema-warmup (fewer errors); ct-tail: ct with --schedule linear-tail (docs/techniques.md)',
    ).choices(Object.keys(RECIPES)),
  )
  .option('--unlabeled-weight <x>', 'weight of the unsupervised loss in D', num, d.unlabeledWeight)
  .option('--seed <n>', 'seed for init, noise and batch order', int, d.seed)
  .option('--seed-data <n>', 'seed choosing the labeled examples (default: --seed)', int)
  .option('--out <dir>', 'run directory (checkpoint, metrics.jsonl, samples/)', d.out)
  .option('--resume <dir>', 'continue the run in DIR from its last checkpoint')
  .option('--overwrite', 'replace an earlier run in --out instead of refusing')
  .option(
    '--max-minutes <x>',
    "the run's training time: with a --schedule, the plan (lr reaches 0 as the budget ends); else a clean stop. --epochs becomes a cap",
    num,
  )
  .option(
    '--checkpoint-minutes <x>',
    'also checkpoint mid-epoch once the last checkpoint is this old (resume is exact mid-epoch)',
    num,
    d.checkpointMinutes,
  )
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default(d.backend))
  .addOption(threadsOption('every core'))
  .addOption(matmulOption())
  .action(async (opts, cmd: Command) => {
    // Only options the user typed: defaults live in validateConfig, and --resume must not see them.
    const given: Record<string, unknown> = {};
    for (const key of Object.keys(opts))
      if (cmd.getOptionValueSource(key) === 'cli' && key !== 'resume' && key !== 'overwrite') given[key] = opts[key];
    if (given.data !== undefined || given.dataset !== undefined)
      given.dataset = absoluteSpec((given.data ?? given.dataset) as string);
    delete given.data;
    if (given.test !== undefined) given.test = absoluteSpec(given.test as string);
    const result = await trainCommand(given as Partial<TrainConfig>, opts.resume ?? null, opts.overwrite === true);
    process.stdout.write(JSON.stringify(result) + '\n');
  });

program
  .command('sweep')
  .description(
    'one training run per seed (--seed and --seed-data both take it), in parallel, then mean ± std per epoch',
  )
  .option('--seeds <list>', 'seeds: a range or a list, e.g. 1-5 or 1,3,7', '1-5')
  .requiredOption('--out <dir>', 'sweep directory: DIR/seed-N per seed, DIR/summary.json')
  .option('--epochs <n>', "epochs per seed (with --resume: default the sweep's own)", int)
  .option('--jobs <n>', 'runs at once (default: cores / --threads)', int)
  .addOption(threadsOption('1 per run: seeds in parallel use the cores better'))
  .option('--resume', 'continue the sweep in --out: finished seeds kept, unfinished ones resumed')
  .option('--overwrite', 'replace an earlier sweep in --out')
  .option('--json', 'print the summary as JSON instead of the table')
  .allowUnknownOption()
  .allowExcessArguments(true)
  .usage('--seeds 1-5 --out DIR [--jobs N] [train options, e.g. --labels 100 --mode supervised]')
  .action(async (opts, cmd: Command) => {
    const summary = await sweepCommand({
      seeds: parseSeeds(opts.seeds),
      out: opts.out,
      epochs: opts.epochs ?? (opts.resume ? null : d.epochs),
      trainArgs: cmd.args,
      jobs: opts.jobs ?? null,
      threads: opts.threads ?? null,
      resume: opts.resume === true,
      overwrite: opts.overwrite === true,
    });
    process.stdout.write(opts.json ? JSON.stringify(summary) + '\n' : formatSummary(summary));
  });

program
  .command('evaluate')
  .description(
    "test-set accuracy, per-class precision/recall/F1 and confusion matrix of a run's EMA discriminator or of an exported model",
  )
  .argument(
    '<dir>',
    'a run directory (semigan train --out), an exported model directory (semigan export --out) or a sweep directory (semigan sweep --out)',
  )
  .option(
    '--data <spec>',
    `exported models: data to score: a built-in dataset's test split (${BUILTIN_DATASETS.join(', ')}) or every example of images:DIR, manifest:FILE.csv or csv:FILE.csv (default: the model's own test set)`,
  )
  .option('--data-dir <dir>', 'exported models: folder holding the four idx files (overrides the built-in location)')
  .option('--test-limit <n>', "score the first N test images only (a run: instead of the run's own --test-limit)", int)
  .option('--json', 'print one JSON object instead of the report')
  .option(
    '--baseline <sweep>',
    'sweep directories: another sweep (e.g. --mode supervised) whose errors go beside each epoch, with the ratio',
  )
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default(d.backend))
  .addOption(threadsOption('every core'))
  .addOption(matmulOption())
  .action(async (dir: string, opts) => {
    const sweep = sweepReport(dir, opts.baseline);
    if (sweep !== null) {
      process.stdout.write(sweep);
      return;
    }
    const report = await evaluateCommand(dir, {
      backend: opts.backend,
      threads: opts.threads ?? null,
      matmul: opts.matmul,
      data: opts.data,
      dataDir: opts.dataDir,
      testLimit: opts.testLimit,
    });
    process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : formatReport(report));
  });

program
  .command('export')
  .description(
    "write a run's EMA discriminator as a standalone classifier: TensorFlow.js (model.json, weights.bin), ONNX (model.onnx) and metadata.json",
  )
  .argument('<run-dir>', 'a directory written by semigan train')
  .requiredOption(
    '--out <dir>',
    'model directory to create (written atomically); with --format triton, the model repository',
  )
  .addOption(
    new Option('--format <f>', 'all: TensorFlow.js and ONNX side by side; triton: a Triton model repository entry')
      .choices(EXPORT_FORMATS)
      .default('all'),
  )
  .option('--name <name>', 'the model name in a Triton repository (default: the run directory name)')
  .option('--overwrite', 'replace an earlier export in --out')
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default(d.backend))
  .addOption(threadsOption('every core'))
  .addOption(matmulOption())
  .action(async (runDir: string, opts) => {
    const result = await exportCommand(runDir, opts.out, {
      overwrite: opts.overwrite === true,
      format: opts.format,
      name: opts.name,
      backend: opts.backend,
      threads: opts.threads ?? null,
      matmul: opts.matmul,
    });
    process.stdout.write(JSON.stringify(result) + '\n');
  });

const positiveInt = (v: string) => {
  const n = int(v);
  if (n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
};

program
  .command('predict')
  .description(
    'classify images (or CSV rows, for a tabular model) with an exported model: label, probability, top-k and realness per input',
  )
  .argument('<model-dir>', 'a directory written by semigan export')
  .argument(
    '<inputs...>',
    'image files (PNG, JPEG, WebP, GIF, TIFF, ...; any size) or idx image files (every image in them); tabular models: CSV files with the feature columns',
  )
  .option('--json', 'print one JSON object {model, predictions: [...]} instead of the table')
  .option('--top-k <k>', 'classes listed per input, most probable first', positiveInt, 3)
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default(d.backend))
  .addOption(threadsOption('every core'))
  .addOption(matmulOption())
  .action(async (modelDir: string, inputs: string[], opts) => {
    const out = await predictCommand(modelDir, inputs, {
      topK: opts.topK,
      backend: opts.backend,
      threads: opts.threads ?? null,
      matmul: opts.matmul,
    });
    process.stdout.write(opts.json ? JSON.stringify(out) + '\n' : formatPredictions(out));
  });

const size = (v: string) => {
  try {
    return parseSize(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message + '.');
  }
};

program
  .command('serve')
  .description(
    'HTTP prediction server for an exported model: POST /v1/predict (images or JSON), GET /v1/metadata, GET /healthz (docs/serving.md)',
  )
  .argument('<model-dir>', 'a directory written by semigan export')
  .option('--port <n>', 'TCP port (0: any free port; the chosen one is printed)', int, sd.port)
  .option('--host <addr>', 'address to bind (0.0.0.0 or :: for every interface)', sd.host)
  .option(
    '--workers <n>',
    'server processes sharing the port (node:cluster; crashed ones are restarted)',
    positiveInt,
    sd.workers,
  )
  .option(
    '--max-batch <n>',
    'most rows per model call (micro-batching of concurrent requests)',
    positiveInt,
    sd.maxBatch,
  )
  .option(
    '--max-rows <n>',
    'most "inputs" rows or "images" in one request (more: 413, before anything is allocated)',
    positiveInt,
    sd.maxRows,
  )
  .option(
    '--max-image-pixels <n>',
    'largest image, width x height from its header (more: 422, nothing decoded)',
    positiveInt,
    sd.maxImagePixels,
  )
  .option(
    '--max-request-pixels <n>',
    "most pixels one request's images may hold, summed from their headers before any is decoded (more: 413)",
    positiveInt,
    sd.maxRequestPixels,
  )
  .option('--max-wait-ms <ms>', 'longest a queued row waits for more before its model call runs', num, sd.maxWaitMs)
  .option('--body-limit <size>', 'largest request body (bytes, or e.g. 512kb, 1mb; 1kb = 1024)', size, sd.bodyLimit)
  .option('--timeout-ms <ms>', 'time a client has to send a whole request, else 408 (0 = no limit)', int, sd.timeoutMs)
  .option(
    '--top-k <k>',
    'classes listed in each prediction\'s "top" (a request may say ?top_k=N)',
    positiveInt,
    sd.topK,
  )
  .option(
    '--token <token>',
    'require "Authorization: Bearer TOKEN" (except on /healthz); default: $SEMIGAN_TOKEN if set',
  )
  .addOption(
    new Option('--engine <name>', 'tfjs (model.json) or onnx (model.onnx, onnxruntime-node); auto: onnx when it loads')
      .choices(ENGINES)
      .default(sd.engine),
  )
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default(d.backend))
  .addOption(threadsOption('the cores divided among --workers'))
  .addOption(matmulOption())
  .action(async (modelDir: string, opts) => {
    const code = await serveCommand(modelDir, {
      port: opts.port,
      host: opts.host,
      workers: opts.workers,
      maxBatch: opts.maxBatch,
      maxRows: opts.maxRows,
      maxImagePixels: opts.maxImagePixels,
      maxRequestPixels: opts.maxRequestPixels,
      maxWaitMs: opts.maxWaitMs,
      bodyLimit: opts.bodyLimit,
      timeoutMs: opts.timeoutMs,
      topK: opts.topK,
      token: opts.token ?? null,
      engine: opts.engine,
      backend: opts.backend,
      threads: opts.threads ?? null,
      matmul: opts.matmul,
    });
    process.exit(code);
  });

program
  .command('report')
  .description(
    'one self-contained HTML page of a run (or a sweep): curves, sample grids, confusion matrix, confident errors, what to label next',
  )
  .argument('<run-dirs...>', 'runs or sweep directories; the first is described in depth, the others overlaid')
  .option('--out <file>', 'the HTML file (default: FIRST_RUN/report.html)')
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default(d.backend))
  .addOption(threadsOption('every core'))
  .addOption(matmulOption())
  .action(async (dirs: string[], opts) => {
    const r = await reportCommand(dirs, {
      out: opts.out,
      backend: opts.backend,
      threads: opts.threads ?? null,
      matmul: opts.matmul,
    });
    process.stdout.write(JSON.stringify({ out: r.out }) + '\n');
  });

const data = program.command('data').description('look at a dataset before training');
data
  .command('inspect')
  .description(
    'examples per class, labeled / unlabeled / test counts, sizes and channels (or feature columns), and problems: unreadable files or rows, odd sizes, classes with few labels, duplicates',
  )
  .argument('<spec>', 'images:DIR, manifest:FILE.csv, parquet:FILE_OR_DIR or csv:FILE.csv')
  .option('--test <spec>', 'a test set to check against the data (classes, duplicates across the two)')
  .option(
    '--test-split <fraction>',
    `without --test: the fraction of each class's labels training would hold out (default ${DEFAULT_TEST_SPLIT})`,
    num,
  )
  .option('--unlabeled-dir <name>', 'images:DIR: subfolder of unlabeled images', d.unlabeledDir)
  .option('--label-column <name>', "csv: column holding the class; parquet: the same (default 'label' when present)")
  .option('--image-column <name>', "parquet: column of encoded images (default 'image')")
  .option('--features <names>', 'csv: comma-separated feature columns', list)
  .option('--drop-columns <names>', 'csv: comma-separated columns to leave out', list)
  .option(
    '--data-store <where>',
    `images: the --data-store training would use (${DATA_STORES.join(', ')})`,
    d.dataStore,
  )
  .option('--json', 'print one JSON object instead of the report')
  .action(async (spec: string, opts) => {
    const report = await inspectData(spec, {
      test: opts.test ?? null,
      testSplit: opts.testSplit,
      unlabeledDir: opts.unlabeledDir,
      labelColumn: opts.labelColumn ?? null,
      features: opts.features ?? null,
      dropColumns: opts.dropColumns ?? [],
      dataStore: opts.dataStore,
      imageColumn: opts.imageColumn ?? null,
    });
    process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : formatInspect(report));
  });

program
  .command('calibrate')
  .description(
    "choose a finished run's exported weights (averaged or current) and fit its temperature on N labeled rows it never trained on, as train --val N does",
  )
  .argument('<run-dir>', 'a directory written by semigan train')
  .requiredOption(
    '--val <n>',
    'labeled rows to hold out (the same number per class, besides the training labels)',
    positiveInt,
  )
  .option('--json', 'print the choice as one JSON object')
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default(d.backend))
  .addOption(threadsOption('every core'))
  .addOption(matmulOption())
  .action(async (runDir: string, opts) => {
    const choice = await calibrateCommand(runDir, {
      val: opts.val,
      backend: opts.backend,
      threads: opts.threads ?? null,
      matmul: opts.matmul,
    });
    process.stdout.write(
      opts.json
        ? JSON.stringify(choice) + '\n'
        : `${runDir}: exports the ${choice.weights} weights at temperature ${choice.temperature.toPrecision(4)} (${choice.reason})\n`,
    );
  });

program
  .command('suggest')
  .description(
    "which examples to label next: a run's unlabeled training examples ranked by its classifier's uncertainty",
  )
  .argument('<run-dir>', 'a directory written by semigan train')
  .option('--n <n>', 'how many examples to list', positiveInt, 50)
  .addOption(
    new Option(
      '--by <criterion>',
      'margin: smallest gap between the two most probable classes; entropy: most spread-out class probabilities',
    )
      .choices(SUGGEST_CRITERIA)
      .default('margin'),
  )
  .option(
    '--out <file.csv>',
    'also write them as CSV (rank,id,predicted,probability,runner_up,runner_up_probability,margin,entropy,realness)',
  )
  .option('--json', 'print one JSON object instead of the table')
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default(d.backend))
  .addOption(threadsOption('every core'))
  .addOption(matmulOption())
  .action(async (runDir: string, opts) => {
    const out = await suggestCommand(runDir, {
      n: opts.n,
      by: opts.by,
      out: opts.out ?? null,
      backend: opts.backend,
      threads: opts.threads ?? null,
      matmul: opts.matmul,
    });
    process.stdout.write(opts.json ? JSON.stringify(out) + '\n' : formatSuggestions(out, opts.by));
  });

// `semigan predict ... | head`: a closed pipe ends the output, not with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof SemiganError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(1);
  }
  // The disk, not semigan: full, read-only, a directory where a file should be.
  if (isFsError(err)) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`error: ${e.path ?? ''}${e.path ? ': ' : ''}${e.syscall} failed (${describeFsError(e)})\n`);
    process.exit(1);
  }
  throw err;
});
