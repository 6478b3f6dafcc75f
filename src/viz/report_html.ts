/**
 * The HTML of `semigan report`: one self-contained page (styles, script, charts and images all
 * inline; nothing fetched), from plain data gathered by commands/report.ts.
 */
import { accuracyChart, lossChart, lrChart, secondsChart, type NamedRun } from './curves.js';
import { lineChart } from './svg_chart.js';

export interface Thumb {
  /** data: URI of a PNG. */
  src: string;
  caption: string;
}

export interface ClassRow {
  name: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface ReportPage {
  title: string;
  /** The first run is described in depth; all are overlaid on the accuracy chart. */
  runs: NamedRun[];
  /** Sample grids of the first run, one per epoch. */
  grids: { epoch: number; src: string }[];
  evaluation: {
    accuracy: number;
    n: number;
    classes: string[];
    /** confusion[true][predicted] */
    confusion: number[][];
    perClass: ClassRow[];
    /** Reliability of the exported probabilities (eval/calibration.ts), with D's own ECE before the temperature. */
    calibration?: {
      temperature: number;
      eceBefore: number;
      eceAfter: number;
      bins: { lo: number; hi: number; count: number; confidence: number; accuracy: number }[];
    };
  } | null;
  wrong: Thumb[];
  suggestions: Thumb[];
  config: unknown;
  dataSummary: string;
  generatedAt: string;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const pct = (v: number) => `${(100 * v).toFixed(2)}%`;

/** Reliability diagram: accuracy against mean confidence per non-empty bin, and the diagonal. */
function reliability(c: NonNullable<NonNullable<ReportPage['evaluation']>['calibration']>): string {
  const used = c.bins.filter((b) => b.count > 0);
  const text =
    c.temperature === 1
      ? `Expected calibration error ${c.eceBefore.toFixed(4)} (${c.bins.length} bins; no temperature fitted: train with --val N).`
      : `Expected calibration error ${c.eceBefore.toFixed(4)} with D's own probabilities, ${c.eceAfter.toFixed(4)} with the exported temperature ${c.temperature.toPrecision(3)} (${c.bins.length} bins).`;
  const chart = lineChart(
    [
      { name: 'exported probabilities', points: used.map((b) => [100 * b.confidence, 100 * b.accuracy]) },
      {
        name: 'perfect calibration',
        points: [
          [0, 0],
          [100, 100],
        ],
        dashed: true,
      },
    ],
    {
      title: 'Reliability: accuracy per confidence bin',
      xLabel: 'mean confidence (%)',
      yLabel: 'accuracy (%)',
      yMin: 0,
      yMax: 100,
      id: 'reliability',
    },
  );
  return `<p>${esc(text)}</p><div class="charts">${chart}</div>`;
}

function confusionTable(e: NonNullable<ReportPage['evaluation']>): string {
  const max = Math.max(1, ...e.confusion.flat());
  const head = e.classes.map((c) => `<th>${esc(c)}</th>`).join('');
  const rows = e.confusion
    .map((row, t) => {
      const cells = row
        .map((v, p) => {
          // Correct cells blue, errors red, the shade by count (square root: small errors stay visible).
          const a = Math.sqrt(v / max);
          const color = t === p ? `rgba(31,119,180,${a.toFixed(3)})` : `rgba(214,39,40,${a.toFixed(3)})`;
          return `<td class="cm" style="background:${color}" data-true="${t}" data-pred="${p}" title="true ${esc(e.classes[t])}, predicted ${esc(e.classes[p])}: ${v}">${v}</td>`;
        })
        .join('');
      return `<tr><th>${esc(e.classes[t])}</th>${cells}</tr>`;
    })
    .join('\n');
  return `<table class="confusion" id="confusion"><tr><th>true \\ predicted</th>${head}</tr>\n${rows}</table>`;
}

function perClassTable(rows: ClassRow[]): string {
  const body = rows
    .map(
      (r) =>
        `<tr><td>${esc(r.name)}</td><td>${r.precision.toFixed(4)}</td><td>${r.recall.toFixed(4)}</td><td>${r.f1.toFixed(4)}</td><td>${r.support}</td></tr>`,
    )
    .join('\n');
  return `<table class="metrics" id="per-class"><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>\n${body}</table>`;
}

const thumbs = (id: string, list: Thumb[]) =>
  `<div class="thumbs" id="${id}">${list.map((t) => `<figure><img src="${t.src}" alt=""><figcaption>${esc(t.caption)}</figcaption></figure>`).join('')}</div>`;

export function renderReport(p: ReportPage): string {
  const main = p.runs[0];
  const last = main.metrics[main.metrics.length - 1];
  const grids = p.grids
    .map(
      (g, i) =>
        `<img class="grid" data-epoch="${g.epoch}" src="${g.src}" alt="samples after epoch ${g.epoch}"${i === p.grids.length - 1 ? '' : ' hidden'}>`,
    )
    .join('\n');
  const slider = p.grids.length
    ? `<p><input type="range" id="grid-epoch" min="0" max="${p.grids.length - 1}" value="${p.grids.length - 1}"> <span id="grid-label">epoch ${p.grids[p.grids.length - 1].epoch}</span></p>
<div id="grids">${grids}</div>`
    : '<p>No sample grids (tabular data, or a supervised run).</p>';
  const summary = last
    ? `<p class="summary">After epoch ${last.epoch}: test accuracy <b>${pct(last.test_acc)}</b> (averaged weights), ${pct(last.test_acc_current)} (current weights)${last.test_acc_tail === undefined ? '' : `, ${pct(last.test_acc_tail)} (tail average)`}.</p>`
    : '<p class="summary">No epoch finished yet.</p>';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(p.title)}</title>
<style>
body { font-family: DejaVu Sans, Liberation Sans, Arial, sans-serif; margin: 24px auto; max-width: 1320px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
.confusion td { min-width: 34px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; } figure { margin: 0; text-align: center; font-size: 11px; width: 96px; }
figure img, img.grid { image-rendering: pixelated; } figure img { width: 84px; height: 84px; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
</style>
</head>
<body>
<h1>${esc(p.title)}</h1>
${summary}
<p>${esc(p.dataSummary)}</p>
<h2>Learning curves</h2>
<div class="charts">
${accuracyChart(p.runs)}
${lrChart(p.runs)}
${lossChart(main)}
${secondsChart(p.runs)}
</div>
<h2>Samples of the generator, per epoch</h2>
${slider}
<h2>Confusion matrix and per-class scores (exported weights, test set)</h2>
${p.evaluation ? `<p>Accuracy ${pct(p.evaluation.accuracy)} on ${p.evaluation.n} test examples.</p>${confusionTable(p.evaluation)}<p></p>${perClassTable(p.evaluation.perClass)}` : '<p>Not evaluated.</p>'}
<h2>Calibration (test set)</h2>
${p.evaluation?.calibration ? reliability(p.evaluation.calibration) : '<p>Not evaluated.</p>'}
<h2>Most confidently wrong test examples</h2>
${p.wrong.length ? thumbs('wrong', p.wrong) : '<p>None shown (tabular data, or no errors).</p>'}
<h2>Label these next (semigan suggest)</h2>
${p.suggestions.length ? thumbs('suggestions', p.suggestions) : '<p>None shown (tabular data, or nothing unlabeled).</p>'}
<h2>Configuration</h2>
<pre id="config">${esc(JSON.stringify(p.config, null, 2))}</pre>
<p><small>semigan report, ${esc(p.generatedAt)}</small></p>
<script>
const slider = document.getElementById('grid-epoch');
if (slider) {
  const grids = [...document.querySelectorAll('img.grid')];
  slider.addEventListener('input', () => {
    grids.forEach((g, i) => (g.hidden = i !== Number(slider.value)));
    document.getElementById('grid-label').textContent = 'epoch ' + grids[Number(slider.value)].dataset.epoch;
  });
}
</script>
</body>
</html>
`;
}
