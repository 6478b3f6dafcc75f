/**
 * Learning-rate schedules and the time-budget planner: the multipliers and lrs at chosen steps
 * against hand-computed values, a budget planned with an injected clock (every iteration costs
 * exactly one second), and a resume in the middle of the decay that continues the same lr
 * sequence. Tiny real runs on MNIST slices.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/backend.js';
import { prepareData } from '../../src/data/prepare.js';
import { buildModelForConfig } from '../../src/models/presets.js';
import { MAX_EPOCHS, validateConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { lrAtStep, planEpochs, rampUpFactor, scheduleFactor } from '../../src/train/schedule.js';
import { SemiganError } from '../../src/errors.js';

let tmp: string;
before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-schedule-'));
  await initBackend('wasm');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('schedule multipliers at chosen progress points', () => {
  for (const p of [0, 0.3, 1]) assert.equal(scheduleFactor('constant', p, 1 / 3), 1);
  // linear-tail, tail 1/3: flat up to p = 2/3, then (1 - p) / (1/3).
  close(scheduleFactor('linear-tail', 0.5, 1 / 3), 1, 'p 0.5');
  close(scheduleFactor('linear-tail', 2 / 3, 1 / 3), 1, 'p 2/3');
  close(scheduleFactor('linear-tail', 0.8, 1 / 3), 0.6, 'p 0.8');
  close(scheduleFactor('linear-tail', 0.9, 0.5), 0.2, 'tail 0.5, p 0.9');
  close(scheduleFactor('linear-tail', 1, 1 / 3), 0, 'p 1');
  close(scheduleFactor('linear-tail', 1.5, 1 / 3), 0, 'past the plan');
  // cosine: (1 + cos(pi p)) / 2.
  close(scheduleFactor('cosine', 0.5, 1 / 3), 0.5, 'cos p 0.5');
  close(scheduleFactor('cosine', 0.25, 1 / 3), (1 + Math.SQRT1_2) / 2, 'cos p 0.25');
  close(scheduleFactor('cosine', 1, 1 / 3), 0, 'cos p 1');
});

test('lr at a step over an epoch plan, and the legacy --lr-decay-start', () => {
  const c = { lr: 0.003, schedule: 'linear-tail' as const, lrTail: 1 / 3, lrDecayStart: null, epochs: 10 };
  // 10 epochs x 100 iterations: step 900 is p = 0.9, so 0.003 * 0.1 * 3.
  close(lrAtStep(c, 900, 1000, 100), 0.003 * 0.3, 'step 900');
  close(lrAtStep(c, 500, 1000, 100), 0.003, 'step 500');
  close(lrAtStep({ ...c, schedule: 'cosine' }, 250, 1000, 100), (0.003 * (1 + Math.SQRT1_2)) / 2, 'cosine step 250');
  // Legacy: per epoch, epoch 7 of 10 with the decay from epoch 6: (10 - 7) / (10 - 6).
  const legacy = { ...c, schedule: 'constant' as const, lrDecayStart: 6 };
  close(lrAtStep(legacy, 750, 1000, 100), 0.003 * 0.75, 'legacy epoch 7');
  close(lrAtStep(legacy, 599, 1000, 100), 0.003, 'legacy epoch 5');
});

test('planEpochs: whole epochs that fit in the budget left, 1% kept free, at most the cap', () => {
  // 100 s budget -> 99 s usable; 10 s used; 9 s per epoch: 89 / 9 -> 9 more.
  assert.equal(planEpochs({ cap: 1000, epochsDone: 2, secondsUsed: 10, budgetSeconds: 100, epochSeconds: 9 }), 11);
  assert.equal(planEpochs({ cap: 5, epochsDone: 2, secondsUsed: 10, budgetSeconds: 100, epochSeconds: 9 }), 5);
  assert.equal(planEpochs({ cap: 1000, epochsDone: 3, secondsUsed: 120, budgetSeconds: 100, epochSeconds: 9 }), 3);
});

test('config: schedule flags, the budget recipe, and bad input as one line naming the flag', () => {
  const c = validateConfig({ maxMinutes: 120 });
  assert.deepEqual([c.recipe, c.schedule, c.consistency, c.entropy], ['paper', 'constant', 0, 0]);
  assert.equal(c.epochs, 100_000, 'with a budget and no --epochs, the budget decides');
  assert.equal(validateConfig({ maxMinutes: 120, epochs: 30 }).epochs, 30);
  assert.equal(validateConfig({ maxMinutes: 120, recipe: 'paper' }).schedule, 'constant');
  assert.equal(validateConfig({}).recipe, 'paper');
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ schedule: 'step' }, /--schedule must be one of constant, linear-tail, cosine; received "step"/],
    [{ lrTail: 0 }, /--lr-tail must be a fraction in \(0, 1\]/],
    [{ maxMinutes: 0 }, /--max-minutes must be a positive number; received 0/],
    [{ maxMinutes: 'soon' }, /--max-minutes must be a positive number; received "soon"/],
    [{ schedule: 'cosine', lrDecayStart: 3 }, /--lr-decay-start .* cannot be combined with --schedule cosine/],
  ];
  for (const [opts, re] of bad) assert.throws(() => validateConfig(opts), re);
});

/** A tiny in-process run whose clock advances `msPerIteration(step)` per iteration (default one second). */
function clockedTrainer(
  over: Partial<TrainConfig>,
  startMs = 0,
  msPerIteration: (step: number) => number = () => 1000,
) {
  const config = validateConfig({
    trainLimit: 300,
    testLimit: 50,
    itersPerEpoch: 4,
    batchSize: 10,
    backend: 'wasm',
    seed: 3,
    ...over,
    out: join(tmp, String(over.out ?? 'run')), // inside the test's temp dir, whatever name is given
  });
  const data = prepareData(config);
  let ms = startMs;
  const lrs: [number, number][] = []; // [step, lr]
  const progress: string[] = [];
  const trainer: Trainer = new Trainer(
    config,
    buildModelForConfig(config, data.train.shape, data.train.classes.length),
    data,
    {
      log: () => {},
      progressStream: { write: (chunk: string) => progress.push(chunk) },
      now: () => ms,
      onIteration: (_e, _i, lr) => {
        ms += msPerIteration(trainer.step);
        lrs.push([trainer.step, lr]);
      },
    },
  );
  return { trainer, lrs, progress };
}

test('a time budget plans whole epochs from the measured pace; the lr reaches 0 as the budget ends', async () => {
  // 0.5 min = 30 s, 29.7 s usable; epochs of 4 one-second iterations (evaluation takes no clock
  // time here): after the first epoch the plan is floor(29.7 / 4) = 7 epochs = 28 steps.
  const { trainer, lrs, progress } = clockedTrainer({ maxMinutes: 0.5, out: 'budget', recipe: 'ct-tail' });
  trainer.initialize();
  const result = await trainer.run();
  trainer.dispose();
  assert.equal(trainer.plannedEpochs, 7);
  // Before a pace is measured the plan's length is unknown, not the 100,000-epoch cap.
  const text = progress.join('');
  assert.match(text, /^epoch 1\/~\? /m);
  assert.match(text, /^epoch 2\/~7 /m);
  assert.doesNotMatch(text, /100000/);
  assert.equal(result.step, 28);
  assert.equal(result.stoppedEarly, false);
  // Step s (1-based after it ran; it used the lr of step s - 1) of 28: 0.003 * min(1, 3 (1 - (s-1)/28)).
  for (const [s, lr] of lrs.slice(4)) close(lr, 0.003 * Math.min(1, 3 * (1 - (s - 1) / 28)), `step ${s}`);
  close(lrs.at(-1)![1], 0.003 * 3 * (1 / 28), 'last step: one step from 0');
  assert.ok(result.seconds <= 30, `${result.seconds} s within the 30 s budget`);
});

test('the lr never rises: a machine that speeds up mid-decay lengthens the plan, and the lr holds until the schedule falls below it', async () => {
  // 1 min = 59.4 s usable, 4 iterations per epoch. Steps 1-20 take 2 s (8 s epochs: a plan of 7
  // epochs = 28 steps, whose tail starts at step 18.7), the rest 0.5 s (2 s epochs). The plan then
  // grows with the pace (the mean of the last 3 epochs): 8 epochs after epoch 6 (mean 6 s, 42 s
  // used: 6 + floor(17.4 / 6)), 10 after 7, 14 after 8 (56 steps). Unheld, step 25's lr would be
  // 0.003 x 3 (1 - 24/32) = 0.00225, above step 24's 0.003 x 3 (1 - 23/28) = 0.00161.
  const plans: number[] = [];
  const { trainer, lrs } = clockedTrainer({ maxMinutes: 1, out: 'speedup', recipe: 'ct-tail' }, 0, (step) => {
    if (step % 4 === 0) plans.push(trainer.plannedEpochs);
    return step <= 20 ? 2000 : 500;
  });
  trainer.initialize();
  const result = await trainer.run();
  const ceiling = trainer.checkpoint().meta.lrCeiling;
  trainer.dispose();
  assert.deepEqual(
    plans.filter((p, i) => p !== plans[i - 1]),
    [MAX_EPOCHS, 7, 8, 10, 14],
    'the plan at the end of each epoch (the first: no pace measured yet)',
  );
  assert.equal(result.step, 56);
  const at = (s: number) => lrs.find(([step]) => step === s)![1]; // the lr step s ran with
  close(at(24), 0.003 * 3 * (1 - 23 / 28), 'step 24 (0-based 23), the last of plan 7');
  assert.ok(lrAtStep(trainer.config, 24, 32, 4) > at(24), 'the schedule alone would rise at step 25');
  for (const s of [25, 27]) close(at(s), at(24), `step ${s}: held`);
  // 0-based step 27, the last of plan 8, falls below the hold: 3 (1 - 27/32) = 0.469.
  close(at(28), 0.003 * 3 * (1 - 27 / 32), 'step 28: the 8-epoch schedule, below the hold');
  // Plans 10 and 14 would rise again (0-based 32 of 56: factor 1); the hold stays until the
  // 56-step schedule is below it, from 0-based step 48 on: 3 (1 - 48/56) = 0.429 < 0.469.
  for (const s of [29, 33, 40, 48]) close(at(s), at(28), `step ${s}: held`);
  close(at(49), 0.003 * 3 * (1 - 48 / 56), 'step 49: the schedule again');
  for (let i = 1; i < lrs.length; i++) assert.ok(lrs[i][1] <= lrs[i - 1][1], `step ${lrs[i][0]}: the lr rose`);
  close(lrs.at(-1)![1], (0.003 * 3) / 56, 'the last step: one step from 0');
  close(ceiling!, lrs.at(-1)![1], 'the checkpoint keeps the hold for a resume');
});

test('resuming in the middle of the decay gives the same lr sequence as the uninterrupted run', async () => {
  // 0.5404 min = 32.42 s, 32.1 s usable: 8 epochs of 4 s. A resumed run that re-measured its pace
  // from its own steps (4 x 1 s + 5% for evaluation = 4.2 s) would plan floor(4.09 / 4.2) = 0
  // more epochs after epoch 7 instead of 1: the pace must come back from the checkpoint.
  const a = clockedTrainer({ maxMinutes: 0.5404, out: 'a', recipe: 'ct-tail' });
  let snapshot: ReturnType<Trainer['checkpoint']> | null = null;
  const onIteration = a.trainer['io'].onIteration!;
  a.trainer['io'].onIteration = (e, i, lr) => {
    onIteration(e, i, lr);
    if (a.trainer.step === 26) snapshot = a.trainer.checkpoint(); // epoch 7, iteration 2: p = 0.81, decaying
  };
  a.trainer.initialize();
  await a.trainer.run();
  a.trainer.dispose();
  assert.ok(snapshot, 'snapshot taken');
  const snap = snapshot as ReturnType<Trainer['checkpoint']>;
  assert.equal(snap.meta.seconds, 26, 'the checkpoint holds all 26 seconds, the epoch in progress included');
  assert.equal(a.trainer.plannedEpochs, 8);

  const b = clockedTrainer({ maxMinutes: 0.5404, out: 'b', recipe: 'ct-tail' }, 5e6); // another clock origin: only elapsed time counts
  b.trainer.restore(snap);
  await b.trainer.run();
  b.trainer.dispose();
  assert.deepEqual(
    b.lrs,
    a.lrs.filter(([s]) => s > 26),
    'steps 27..32: same lrs',
  );
  assert.equal(b.trainer.plannedEpochs, a.trainer.plannedEpochs);
});

test('a budget that holds less than one epoch is a one-line error naming --max-minutes', async () => {
  // 12 iterations of 1 s per epoch (plus 5% for evaluation) in a 0.2 min = 12 s budget, 1% kept free.
  const { trainer } = clockedTrainer({ maxMinutes: 0.2, itersPerEpoch: 12, out: 'short', recipe: 'ct-tail' });
  trainer.initialize();
  await assert.rejects(
    () => trainer.run(),
    (e: unknown) =>
      e instanceof SemiganError &&
      /^--max-minutes 0.2: one epoch takes ~0.21 min here \(12 iterations, evaluation and checkpoint\), more than the budget holds; give at least 0.23/.test(
        e.message,
      ),
  );
  trainer.dispose();
});

test('rampUpFactor: the Gaussian ramp-up exp(-5 (1 - p/r)^2), 1 from p = r on, 1 when off', () => {
  close(rampUpFactor(0, 0.3), Math.exp(-5), 'start');
  close(rampUpFactor(0.15, 0.3), Math.exp(-1.25), 'half-way');
  close(rampUpFactor(0.3, 0.3), 1, 'end of the ramp');
  close(rampUpFactor(0.9, 0.3), 1, 'after');
  close(rampUpFactor(0, 0), 1, 'off');
});

test('--lr-g follows the same schedule at its own scale; --unlabeled-batch sets the rows of D steps only', async () => {
  const { trainer } = clockedTrainer({
    epochs: 2,
    schedule: 'linear-tail',
    lrG: 0.001,
    unlabeledBatch: 25,
    out: 'levers',
  });
  const seen: { d: number[]; g: number[]; unl: number[]; g_rows: number[] } = { d: [], g: [], unl: [], g_rows: [] };
  const applyD = trainer.optD.apply.bind(trainer.optD);
  const applyG = trainer.optG.apply.bind(trainer.optG);
  trainer.optD.apply = (grads, lr) => (seen.d.push(lr), applyD(grads, lr));
  trainer.optG.apply = (grads, lr) => (seen.g.push(lr), applyG(grads, lr));
  const stepD = trainer['stepD'].bind(trainer);
  const stepG = trainer['stepG'].bind(trainer);
  trainer['stepD'] = (lab: Int32Array, unl: Int32Array, lr: number) => (seen.unl.push(unl.length), stepD(lab, unl, lr));
  trainer['stepG'] = (unl: Int32Array, lr: number) => (seen.g_rows.push(unl.length), stepG(unl, lr));
  trainer.initialize();
  await trainer.run();
  trainer.dispose();
  assert.equal(seen.d.length, 8);
  seen.d.forEach((lr, i) => close(seen.g[i], lr / 3, `step ${i}`));
  close(seen.d[7], 0.003 * 3 * (1 / 8), 'the last step of the plan');
  assert.deepEqual(seen.unl, new Array(8).fill(25));
  assert.deepEqual(seen.g_rows, new Array(8).fill(10), "G's step keeps --batch-size");
});
