/**
 * An image folder: DIR/<class>/.../<image> (any depth) is labeled with the class folder's name,
 * DIR/unlabeled/.../<image> is unlabeled. Hidden files and folders (".name") are skipped.
 *
 * Row order is the natural order of each file's path inside its class (or unlabeled) folder, ties
 * broken by class: a dataset written as DIR/<class>/<index>.png comes back in index order, so a
 * labeled subset chosen by a permutation of row indices picks the same images as from idx files.
 */
import { readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { extname, join } from 'node:path';
import { dataError } from '../../errors.js';
import { PackedEntries, type ImageList } from '../images/entry.js';
import { naturalCompare } from '../natural_sort.js';

/** Extensions taken as images (what sharp's prebuilt binaries read); other files are listed in `ignored`. */
export const IMAGE_EXTENSIONS = new Set([
  '.png',
  '.jpg',
  '.jpeg',
  '.jpe',
  '.jfif',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
  '.heif',
  '.heic',
  '.svg',
]);
export const DEFAULT_UNLABELED_DIR = 'unlabeled';

export const isImageName = (name: string) => IMAGE_EXTENSIONS.has(extname(name).toLowerCase());

const EXPECTED = (dir: string, unlabeled: string) =>
  `expected ${dir}/<class>/<image files> (one folder per class), plus ${dir}/${unlabeled}/ for unlabeled images`;

/** stat that follows symlinks; null for a dangling link. */
function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/** Files under `root` as paths relative to it ('/'-separated), hidden names skipped, symlinks followed once. */
function walkFiles(root: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (abs: string, rel: string) => {
    const real = realpathSync(abs);
    if (seen.has(real)) return; // a symlink cycle
    seen.add(real);
    for (const d of readdirSync(abs, { withFileTypes: true })) {
      if (d.name.startsWith('.')) continue;
      const childAbs = join(abs, d.name);
      const childRel = rel ? `${rel}/${d.name}` : d.name;
      const st = d.isSymbolicLink() ? statOrNull(childAbs) : d;
      if (st?.isDirectory()) visit(childAbs, childRel);
      else if (st?.isFile()) out.push(childRel);
    }
  };
  visit(root, '');
  return out;
}

export function scanImageFolder(dir: string, opts: { unlabeledDir?: string } = {}): ImageList {
  const unlabeledDir = opts.unlabeledDir ?? DEFAULT_UNLABELED_DIR;
  const st = statOrNull(dir);
  if (!st) throw dataError(`${dir}: directory not found (${EXPECTED(dir, unlabeledDir)})`);
  if (!st.isDirectory()) throw dataError(`${dir}: not a directory (${EXPECTED(dir, unlabeledDir)})`);

  const classes: string[] = [];
  let hasUnlabeled = false;
  const ignored: string[] = [];
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    if (d.name.startsWith('.')) continue;
    const child = d.isSymbolicLink() ? statOrNull(join(dir, d.name)) : d;
    if (child?.isDirectory()) {
      if (d.name === unlabeledDir) hasUnlabeled = true;
      else classes.push(d.name);
    } else if (isImageName(d.name)) {
      throw dataError(
        `${join(dir, d.name)}: an image directly in ${dir}, not in a class folder (${EXPECTED(dir, unlabeledDir)})`,
      );
    } else {
      ignored.push(d.name);
    }
  }
  if (classes.length === 0) {
    throw dataError(`${dir}: no class folders (${EXPECTED(dir, unlabeledDir)})`);
  }
  classes.sort(naturalCompare);

  // Per row: its path inside the group folder and its group (classes, then unlabeled).
  const rels: string[] = [];
  const groupOf: number[] = [];
  const groups = hasUnlabeled ? [...classes, unlabeledDir] : classes;
  groups.forEach((folder, g) => {
    const label = g < classes.length ? folder : null;
    let images = 0;
    const others: string[] = [];
    for (const rel of walkFiles(join(dir, folder))) {
      if (!isImageName(rel)) {
        others.push(`${folder}/${rel}`);
        continue;
      }
      images++;
      rels.push(rel);
      groupOf.push(g);
    }
    ignored.push(...others);
    if (images === 0 && label !== null) {
      const found = others.length
        ? `; found only ${others.length} other file(s): ${others.slice(0, 3).join(', ')}`
        : '';
      throw dataError(
        `${join(dir, folder)} has no image files (expected ${[...IMAGE_EXTENSIONS].join(' ')} files in each class folder${found})`,
      );
    }
  });
  const order = Int32Array.from(rels, (_, i) => i).sort(
    (a, b) => naturalCompare(rels[a], rels[b]) || groupOf[a] - groupOf[b],
  );
  const names = Buffer.from(Array.from(order, (i) => rels[i]).join(''), 'utf8');
  const offsets = new Float64Array(order.length + 1);
  order.forEach((i, k) => (offsets[k + 1] = offsets[k] + Buffer.byteLength(rels[i], 'utf8')));
  const group = Uint16Array.from(order, (i) => groupOf[i]);
  const labels = groups.map((_, g) => (g < classes.length ? classes[g] : null));
  return { entries: new PackedEntries(dir, groups, labels, group, names, offsets), classes, source: dir, ignored };
}
