/**
 * `semigan report` on a short real run (3 epochs of 4 iterations on 500 MNIST images), and in a
 * real browser (Debian's chromium, headless, driven by puppeteer-core): the plotted numbers are
 * metrics.jsonl's, every epoch's sample grid is in the page, the confusion matrix sums to the test
 * set, curves.png is written every epoch; the page opens without console errors, with one point
 * per epoch, and a screenshot is taken. In the same browser, the exported model loaded by plain
 * tf.loadLayersModel from a page on 127.0.0.1 gives Node's predictions on 200 MNIST test images.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser } from 'puppeteer-core';
import sharp from 'sharp';
import { initBackend } from '../../src/backend.js';
import { prepareTestData } from '../../src/data/prepare.js';
import { Classifier } from '../../src/export/classifier.js';
import { readMetrics } from '../../src/train/run_dir.js';
import { ok, runCli } from '../lib/cli.js';
import { allRows } from '../../src/data/rows.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const EPOCHS = 3;
let tmp: string;
let run: string;
let html: string;
let browser: Browser;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'semigan-report-'));
  run = join(tmp, 'run');
  const common = ['--backend', 'wasm', '--threads', '1'];
  const t = ok(
    await runCli([
      'train',
      ...common,
      '--train-limit',
      '500',
      '--test-limit',
      '200',
      '--epochs',
      String(EPOCHS),
      '--iters-per-epoch',
      '4',
      '--batch-size',
      '50',
      '--schedule',
      'linear-tail',
      '--val',
      '20',
      '--tail-average',
      '0.5',
      '--out',
      run,
    ]),
  );
  assert.match(t.stderr, new RegExp(`the whole run in one page: semigan report ${run}`));
  ok(await runCli(['report', run, ...common]));
  html = readFileSync(join(run, 'report.html'), 'utf8');
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: run scripts/install_system_deps.sh (Debian's chromium package)`,
  );
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** The data-y values of one series' points in one chart of the page's HTML. */
function plotted(svgId: string, series: string): number[] {
  const svg = new RegExp(`<svg [^>]*id="${svgId}"[\\s\\S]*?</svg>`).exec(html)![0];
  const group = new RegExp(`<g class="series" data-name="${series.replace(/[()]/g, '\\$&')}">([\\s\\S]*?)</g>`).exec(
    svg,
  )![1];
  return [...group.matchAll(/data-y="([^"]+)"/g)].map((m) => Number(m[1]));
}

test('the report plots metrics.jsonl, holds every epoch grid and a confusion matrix over the whole test set; curves.png exists', async () => {
  const m = readMetrics(run);
  assert.equal(m.length, EPOCHS);
  assert.deepEqual(
    plotted('accuracy', 'run: averaged weights'),
    m.map((e) => 100 * e.test_acc),
  );
  assert.deepEqual(
    plotted('accuracy', 'run: current weights'),
    m.map((e) => 100 * e.test_acc_current),
  );
  // --tail-average 0.5 over 3 epochs: sampled at the ends of epochs 2 and 3.
  assert.deepEqual(
    plotted('accuracy', 'run: tail average'),
    m.slice(1).map((e) => 100 * e.test_acc_tail!),
  );
  assert.equal(m[0].test_acc_tail, undefined);
  assert.deepEqual(
    plotted('losses', 'loss_gen (G)'),
    m.map((e) => e.loss_gen),
  );
  // linear-tail over 3 x 4 steps: the last step of epoch 3 (index 11) runs at 0.003 x 3 x (1 - 11/12).
  assert.deepEqual(
    plotted('lr', 'run'),
    m.map((e) => e.lr),
  );
  assert.deepEqual([m[0].lr, m[1].lr], [0.003, 0.003]);
  assert.ok(Math.abs(m[2].lr - 0.00075) < 1e-12, `lr at the end ${m[2].lr}`);
  // The reliability diagram: one point per non-empty bin, and the ECE text of the exported temperature.
  const result = JSON.parse(readFileSync(join(run, 'result.json'), 'utf8'));
  assert.match(html, new RegExp(`with the exported temperature ${result.temperature.toPrecision(3)} \\(15 bins\\)`));
  const bins = plotted('reliability', 'exported probabilities');
  assert.ok(bins.length >= 1 && bins.length <= 15 && bins.every((a) => a >= 0 && a <= 100));
  const grids = [...html.matchAll(/<img class="grid" data-epoch="(\d+)" src="data:image\/png;base64,/g)].map((x) =>
    Number(x[1]),
  );
  assert.deepEqual(grids, [1, 2, 3]);
  const cells = [...html.matchAll(/<td class="cm" [^>]*>(\d+)<\/td>/g)].map((x) => Number(x[1]));
  assert.equal(cells.length, 100);
  assert.equal(
    cells.reduce((a, b) => a + b, 0),
    200,
  );
  assert.doesNotMatch(html, /(src|href)="https?:/, 'nothing is fetched from the network');
  assert.equal([...html.matchAll(/<figure>/g)].length, 32, '16 confident errors and 16 suggestions');
  const curves = await sharp(join(run, 'curves.png')).metadata();
  assert.deepEqual([curves.format, curves.width, curves.height], ['png', 640, 640]);
  const grid = await sharp(join(run, 'samples', 'epoch-003.png')).metadata();
  assert.equal(grid.width, 906, 'sample grids at 3x');
});

test('in headless chromium: no console errors, one point per epoch (the tail average from its first sample), the slider switches grids; a screenshot', async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto('file://' + join(run, 'report.html'));
  const points = await page.$$eval('#accuracy g.series', (gs) => gs.map((g) => g.querySelectorAll('circle').length));
  assert.deepEqual(points, [EPOCHS, EPOCHS, EPOCHS - 1], 'averaged, current, tail average (from epoch 2)');
  const visible = () =>
    page.$$eval('img.grid', (imgs) =>
      imgs.filter((i) => !(i as HTMLImageElement).hidden).map((i) => (i as HTMLElement).dataset.epoch),
    );
  assert.deepEqual(await visible(), ['3']);
  await page.$eval('#grid-epoch', (el) => {
    (el as HTMLInputElement).value = '0';
    el.dispatchEvent(new Event('input'));
  });
  assert.deepEqual(await visible(), ['1']);
  const loaded = await page.$$eval('img', (imgs) =>
    imgs.every((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0),
  );
  assert.ok(loaded, 'every image decodes');
  const shot = join(tmp, 'report.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok((await sharp(shot).metadata()).height! > 1000);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the exported model in the browser (tf.loadLayersModel from 127.0.0.1) predicts as Node on 200 MNIST test images', async () => {
  const model = join(tmp, 'model');
  ok(await runCli(['export', run, '--out', model, '--format', 'tfjs', '--backend', 'wasm', '--threads', '1']));
  await initBackend('wasm', { threads: 1 });
  const classifier = await Classifier.load(model);
  const t = prepareTestData({ dataset: 'mnist', dataDir: null, testLimit: 200 });
  const node = classifier.predictLogits(allRows(t.x), t.n);
  classifier.dispose();
  const files: Record<string, [string, string]> = {
    '/tf.min.js': [join(REPO, 'node_modules/@tensorflow/tfjs/dist/tf.min.js'), 'text/javascript'],
    '/model/model.json': [join(model, 'model.json'), 'application/json'],
    '/model/weights.bin': [join(model, 'weights.bin'), 'application/octet-stream'],
    '/': ['', 'text/html'],
  };
  const server: Server = createServer((req, res) => {
    const f = files[req.url ?? ''];
    if (!f) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': f[1] });
    res.end(f[0] ? readFileSync(f[0]) : '<!DOCTYPE html><script src="/tf.min.js"></script>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const page = await browser.newPage();
    await page.goto(base + '/');
    const fromBrowser = await page.evaluate(
      async (x: number[], n: number) => {
        const tf = (window as any).tf; // eslint-disable-line @typescript-eslint/no-explicit-any
        await tf.setBackend('cpu');
        const m = await tf.loadLayersModel('/model/model.json');
        const logits = m.predict(tf.tensor4d(x, [n, 28, 28, 1]));
        return Array.from(await logits.data()) as number[];
      },
      Array.from(allRows(t.x)),
      t.n,
    );
    await page.close();
    assert.equal(fromBrowser.length, node.length);
    let worst = 0;
    let sameLabels = 0;
    for (let i = 0; i < t.n; i++) {
      const row = (a: ArrayLike<number>) => Array.from({ length: 10 }, (_, k) => a[i * 10 + k]);
      const [b, nn] = [row(fromBrowser), row(node)];
      for (let k = 0; k < 10; k++) worst = Math.max(worst, Math.abs(b[k] - nn[k]));
      if (b.indexOf(Math.max(...b)) === nn.indexOf(Math.max(...nn))) sameLabels++;
    }
    assert.equal(sameLabels, 200);
    assert.ok(worst < 1e-4, `largest logit difference ${worst}`);
  } finally {
    server.close();
  }
});
