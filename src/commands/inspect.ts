/**
 * `semigan data inspect SPEC`: what a data source holds and what is wrong with it, before any
 * training: examples per class, labeled / unlabeled / test counts, image sizes and channels
 * found (or feature columns), and problems — unreadable files and rows, sizes that will be
 * resized, classes with too few labels, identical files on both sides of the train/test line or
 * with two different labels. Problems are listed, not thrown: inspect reads everything.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { storePlan } from '../data/images/store_plan.js';
import { parseDataSpec, type DataSpec } from '../data/sources/spec.js';
import { scanImageFolder } from '../data/sources/image_folder.js';
import { readManifest } from '../data/sources/manifest.js';
import { checkImage, probeImages, type ImageCheck } from '../data/images/probe.js';
import { openParquet, parquetFiles, DEFAULT_IMAGE_COLUMN } from '../data/sources/parquet.js';
import { naturalCompare } from '../data/natural_sort.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../data/map_limit.js';
import { readTabularCsv } from '../data/sources/tabular.js';
import { entryArray } from '../data/images/entry.js';
import { configError } from '../errors.js';
import { DEFAULT_TEST_SPLIT, type LoadOptions } from '../data/load.js';

/** Fewer labeled examples than this in a class is reported. */
export const FEW_LABELS = 5;
const SHOW = 5;

export interface InspectOptions extends Pick<
  LoadOptions,
  'test' | 'unlabeledDir' | 'labelColumn' | 'features' | 'dropColumns' | 'dataStore' | 'imageColumn'
> {
  /** Without --test: the fraction of each class's labels `train` would hold out (DEFAULT_TEST_SPLIT). */
  testSplit?: number;
}

export interface ClassCount {
  name: string;
  labeled: number;
  test: number;
}

export interface InspectReport {
  spec: string;
  kind: DataSpec['kind'];
  examples: number;
  labeled: number;
  unlabeled: number;
  /** The test set: --test's examples, or the labeled examples --test-split would hold out of the data. */
  test: { spec: string; examples: number };
  classes: ClassCount[];
  /** Images: "HxW" -> files; tabular: the feature columns. */
  sizes?: { size: string; files: number }[];
  channels?: { channels: number; files: number }[];
  features?: string[];
  /** Images: what training would hold, e.g. "61,000 images of 32x32x3: 179 MiB of pixels, held in memory ...". */
  store?: string;
  problems: string[];
}

/** A labeled or unlabeled item of either side, with the bytes (or row) that identify its content. */
interface Item {
  id: string;
  label: string | null;
  side: 'data' | 'test';
  key: () => Promise<string>;
}

const sha1 = (b: Uint8Array | string) => createHash('sha1').update(b).digest('hex');
/** "1 file", "2 files", "2 classes" (words ending in s, x, ch or sh take -es). */
const plural = (n: number, s: string) =>
  `${n.toLocaleString('en-US')} ${s}${n === 1 ? '' : /(s|x|ch|sh)$/.test(s) ? 'es' : 's'}`;
const firstFew = (xs: string[]) =>
  xs.slice(0, SHOW).join('; ') + (xs.length > SHOW ? `; ... (${xs.length} in all)` : '');

/** One image of a side, checked (every pixel decoded), with what identifies its content. */
interface ImageRecord {
  id: string;
  label: string | null;
  check: ImageCheck;
  /** Its encoded bytes (a file's size on disk). */
  bytes: number;
  key: () => Promise<string>;
}

/**
 * The images of a folder, manifest or Parquet spec, each checked. Parquet is read a row group at
 * a time and each image's bytes hashed at once, so only one group's bytes are held.
 */
async function imageRecords(
  s: DataSpec,
  side: 'data' | 'test',
  o: InspectOptions,
  problems: string[],
): Promise<{ classes: string[]; records: ImageRecord[] }> {
  if (s.kind === 'parquet') {
    const spec = `parquet:${s.path}`;
    const { groups, labels, readGroup, rowName } = await openParquet(spec, parquetFiles(s.path), {
      imageColumn: o.imageColumn ?? DEFAULT_IMAGE_COLUMN,
      labelColumn: o.labelColumn ?? null,
    });
    const records: ImageRecord[] = [];
    for (const g of groups) {
      const cells = await readGroup(g);
      const checked = await mapLimit(cells, DEFAULT_CONCURRENCY, async (b, j): Promise<ImageRecord> => {
        const i = g.first + j;
        const key = b ? sha1(b) : null;
        return {
          id: rowName(i),
          label: labels[i],
          check: b ? await checkImage(Buffer.from(b.buffer, b.byteOffset, b.byteLength), true) : NO_BYTES,
          bytes: b?.byteLength ?? 0,
          key: async () => key ?? Promise.reject(new Error('no image bytes')),
        };
      });
      records.push(...checked);
    }
    const classes = [...new Set(labels.filter((l): l is string => l !== null))].sort(naturalCompare);
    return { classes, records };
  }
  if (s.kind !== 'images' && s.kind !== 'manifest') throw new Error(`imageRecords: ${s.kind} holds no images`);
  const list = s.kind === 'images' ? scanImageFolder(s.path, { unlabeledDir: o.unlabeledDir }) : readManifest(s.path);
  if (list.ignored.length)
    problems.push(
      `${plural(list.ignored.length, 'file')} without an image extension in ${list.source} (training stops on them unless --skip-bad): ${firstFew(list.ignored)}`,
    );
  const entries = entryArray(list.entries);
  const probes = await probeImages(
    entries.map((e) => e.path),
    { decode: true },
  );
  const records = entries.map((e, i) => ({
    id: e.id,
    label: e.label,
    check: probes[i],
    bytes: statSync(e.path).size,
    key: async () => sha1(await readFile(e.path)),
  }));
  return { classes: list.classes, records };
}

const NO_BYTES: ImageCheck = { ok: false, error: 'no image bytes in the image column' };

export async function inspectData(specText: string, o: InspectOptions): Promise<InspectReport> {
  const spec = parseDataSpec(specText);
  if (spec.kind === 'builtin')
    throw configError(
      `${specText} is a built-in dataset (official splits, nothing to inspect); inspect your own data: images:DIR, manifest:FILE.csv, parquet:FILE_OR_DIR or csv:FILE.csv`,
    );
  const testSpec = o.test ? parseDataSpec(o.test, '--test') : null;
  if (testSpec && (testSpec.kind === 'builtin' || (testSpec.kind === 'csv') !== (spec.kind === 'csv'))) {
    throw configError(`--test ${o.test}: expected data of the same kind as ${specText}`);
  }
  const problems: string[] = [];
  const items: Item[] = [];
  let classes: string[];
  const extra: Partial<InspectReport> = {};

  if (spec.kind === 'csv') {
    if (!o.labelColumn) throw configError(`${specText} needs --label-column NAME (the column holding the class)`);
    const read = (path: string, side: 'data' | 'test', fixed?: { classes: string[]; features: string[] }) => {
      const t = readTabularCsv(path, {
        labelColumn: o.labelColumn!,
        features: o.features,
        drop: o.dropColumns,
        skipBad: true,
        ...(fixed ? { featureNames: fixed.features } : {}),
      });
      for (const s of t.skipped) problems.push(`bad row ${s.id}: ${s.reason}`);
      for (let r = 0; r < t.n; r++) {
        const row = t.x.gather([r]);
        items.push({
          id: t.ids[r],
          label: t.y[r] < 0 ? null : t.classes[t.y[r]],
          side,
          key: async () => sha1(Buffer.from(row.buffer, row.byteOffset, row.byteLength)),
        });
      }
      return t;
    };
    const t = read(spec.path, 'data');
    classes = t.classes;
    extra.features = t.features;
    if (testSpec) read(testSpec.path, 'test', { classes: t.classes, features: t.features });
  } else {
    const data = await imageRecords(spec, 'data', o, problems);
    const test = testSpec ? await imageRecords(testSpec, 'test', o, problems) : null;
    classes = data.classes;
    const records = [...data.records, ...(test?.records ?? [])];
    const noun = spec.kind === 'parquet' ? 'image' : 'file'; // a Parquet image is a row, not a file
    const sizes = new Map<string, number>();
    const channels = new Map<number, number>();
    const unreadable: string[] = [];
    for (const r of records) {
      if (!r.check.ok) {
        unreadable.push(`${r.id}: ${r.check.error}`);
        continue;
      }
      const size = `${r.check.probe.height}x${r.check.probe.width}`;
      sizes.set(size, (sizes.get(size) ?? 0) + 1);
      channels.set(r.check.probe.channels, (channels.get(r.check.probe.channels) ?? 0) + 1);
    }
    if (unreadable.length)
      problems.push(
        `${plural(unreadable.length, `unreadable ${noun}`)} (training stops on them unless --skip-bad): ${firstFew(unreadable)}`,
      );
    extra.sizes = [...sizes].sort((a, b) => b[1] - a[1]).map(([size, files]) => ({ size, files }));
    extra.channels = [...channels].sort((a, b) => b[1] - a[1]).map(([c, files]) => ({ channels: c, files }));
    const common = extra.sizes[0]?.size;
    if (common) {
      const readable = data.records.filter((r) => r.check.ok).length;
      const onDisk = data.records.reduce((sum, r) => sum + r.bytes, 0);
      extra.store = storePlan(readable, common, extra.channels[0]?.channels ?? 3, onDisk, o.dataStore);
    }
    const odd = records.flatMap((r) =>
      r.check.ok && `${r.check.probe.height}x${r.check.probe.width}` !== common
        ? [`${r.id} (${r.check.probe.height}x${r.check.probe.width})`]
        : [],
    );
    if (odd.length)
      problems.push(
        `${plural(odd.length, noun)} not ${common} (the most common size; they are resized to fit, padded with the background, unless --size says otherwise): ${firstFew(odd)}`,
      );
    for (const [side, rs] of [
      ['data', data.records],
      ['test', test?.records ?? []],
    ] as const)
      for (const r of rs) items.push({ id: r.id, label: r.label, side, key: r.key });
    if (test) {
      const unknown = test.records
        .filter((r) => r.label !== null && !classes.includes(r.label))
        .map((r) => `${r.id} ('${r.label}')`);
      if (unknown.length)
        problems.push(
          `${plural(unknown.length, 'test example')} with a class training does not have [${classes.join(', ')}]: ${firstFew(unknown)}`,
        );
    }
  }

  const dataItems = items.filter((i) => i.side === 'data');
  const testItems = items.filter((i) => i.side === 'test');
  const unlabeledTest = testItems.filter((i) => i.label === null).map((i) => i.id);
  if (unlabeledTest.length)
    problems.push(
      `${plural(unlabeledTest.length, 'test example')} without a label (every test example needs one): ${firstFew(unlabeledTest)}`,
    );
  const split = o.testSplit ?? DEFAULT_TEST_SPLIT;
  const counts: ClassCount[] = classes.map((name) => {
    const labeled = dataItems.filter((i) => i.label === name).length;
    // As stratifiedHoldout counts: round(split x labels), leaving at least one to train on.
    const test = testSpec
      ? testItems.filter((i) => i.label === name).length
      : Math.max(0, Math.min(Math.round(split * labeled), labeled - 1));
    return { name, labeled, test };
  });
  const few = counts.filter((c) => c.labeled < FEW_LABELS).map((c) => `'${c.name}' (${c.labeled})`);
  if (few.length)
    problems.push(`${plural(few.length, 'class')} with fewer than ${FEW_LABELS} labeled examples: ${few.join(', ')}`);
  const labeled = dataItems.filter((i) => i.label !== null).length;
  if (labeled === dataItems.length)
    problems.push(
      'no unlabeled examples: the GAN needs some (add them, or train with --labels N or --mode supervised)',
    );
  problems.push(...(await duplicateProblems(items)));

  return {
    spec: specText,
    kind: spec.kind,
    examples: dataItems.length,
    labeled,
    unlabeled: dataItems.length - labeled,
    test: testSpec
      ? { spec: o.test!, examples: testItems.length }
      : { spec: `--test-split ${split}`, examples: counts.reduce((a, c) => a + c.test, 0) },
    classes: counts,
    ...extra,
    problems,
  };
}

/** Identical contents across the train/test line, or labeled twice with different classes. */
async function duplicateProblems(items: Item[]): Promise<string[]> {
  const keys = await mapLimit(items, 16, (i) => i.key().catch(() => null));
  const groups = new Map<string, Item[]>();
  items.forEach((item, i) => {
    const k = keys[i];
    if (k !== null) groups.set(k, [...(groups.get(k) ?? []), item]);
  });
  const crossing: string[] = [];
  const conflicting: string[] = [];
  for (const g of groups.values()) {
    if (g.length < 2) continue;
    const names = g.map((i) => `${i.side === 'test' ? 'test ' : ''}${i.id}`).join(' = ');
    if (g.some((i) => i.side === 'test') && g.some((i) => i.side === 'data')) crossing.push(names);
    const labels = new Set(g.flatMap((i) => (i.label === null ? [] : [i.label])));
    if (labels.size > 1) conflicting.push(`${names} (${[...labels].join(' vs ')})`);
  }
  const out: string[] = [];
  if (crossing.length)
    out.push(
      `${plural(crossing.length, 'example')} in both the data and the test set (identical contents; test accuracy would be inflated): ${firstFew(crossing)}`,
    );
  if (conflicting.length)
    out.push(
      `${plural(conflicting.length, 'example')} with identical contents but different labels: ${firstFew(conflicting)}`,
    );
  return out;
}

export function formatInspect(r: InspectReport): string {
  const split = r.test.spec.startsWith('--test-split');
  const testText = split
    ? `; ${r.test.spec} would hold out ${plural(r.test.examples, 'labeled example')} for testing`
    : `; test ${r.test.spec}: ${plural(r.test.examples, 'example')}`;
  const lines = [
    `${r.spec}: ${plural(r.examples, 'example')} (${r.labeled.toLocaleString('en-US')} labeled, ${r.unlabeled.toLocaleString('en-US')} unlabeled)${testText}`,
  ];
  const w = Math.max(5, ...r.classes.map((c) => c.name.length));
  lines.push(`  ${'class'.padEnd(w)}  labeled     test`);
  for (const c of r.classes)
    lines.push(`  ${c.name.padEnd(w)}  ${String(c.labeled).padStart(7)}${String(c.test).padStart(9)}`);
  if (r.sizes) lines.push(`sizes (HxW): ${r.sizes.map((s) => `${s.size}: ${s.files}`).join(', ')}`);
  if (r.channels)
    lines.push(
      `channels: ${r.channels.map((c) => `${c.channels === 1 ? 'grayscale' : 'colour'}: ${c.files}`).join(', ')}`,
    );
  if (r.store) lines.push(`store: ${r.store}`);
  if (r.features)
    lines.push(
      `features (${r.features.length}): ${r.features.slice(0, 20).join(', ')}${r.features.length > 20 ? ', ...' : ''}`,
    );
  lines.push(r.problems.length ? `problems (${r.problems.length}):` : 'problems: none found');
  for (const p of r.problems) lines.push(`  - ${p}`);
  return lines.join('\n') + '\n';
}
