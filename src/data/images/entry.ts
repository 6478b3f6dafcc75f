/** The list of image files a data source names, before decoding, and the Dataset it becomes. */
import { join } from 'node:path';
import type { Dataset, RowIds } from '../dataset.js';
import type { Rows } from '../rows.js';

export interface ImageEntry {
  /** Where to read the file (absolute, or relative to the working directory). */
  path: string;
  /** The row's name in messages and Dataset.ids: the path relative to the folder, or as the manifest wrote it. */
  id: string;
  /** Class name; null = unlabeled. */
  label: string | null;
  /** 1-based manifest line, for messages. */
  line?: number;
}

/** The files in row order: an array (manifests), or packed (folders of millions of files). */
export interface EntryList {
  readonly length: number;
  at(i: number): ImageEntry | undefined;
}

export interface ImageList {
  entries: EntryList;
  /** Class names, natural-sorted; the Dataset's y indexes them. */
  classes: string[];
  /** Where the list came from (the folder or the manifest), for messages. */
  source: string;
  /** Files that were passed over because their extension is not an image's (to report, never silently). */
  ignored: string[];
}

/**
 * A folder's files as one buffer of relative paths and a group (class folder or the unlabeled
 * folder) per row: ~20 bytes a file instead of three strings and an object.
 */
export class PackedEntries implements EntryList {
  readonly length: number;
  constructor(
    private readonly root: string,
    /** Folder names; labels[g] is the class of folder g, null for the unlabeled folder. */
    private readonly folders: readonly string[],
    private readonly labels: readonly (string | null)[],
    private readonly group: Uint16Array,
    private readonly names: Buffer,
    /** names[offsets[i]..offsets[i + 1]) is row i's path inside its folder. */
    private readonly offsets: Float64Array,
  ) {
    this.length = group.length;
  }

  /** Row i's path inside its folder ('/'-separated). */
  relative(i: number): string {
    return this.names.toString('utf8', this.offsets[i], this.offsets[i + 1]);
  }

  at(i: number): ImageEntry | undefined {
    if (!(i >= 0 && i < this.length)) return undefined;
    const g = this.group[i];
    const rel = this.relative(i);
    return { path: join(this.root, this.folders[g], rel), id: `${this.folders[g]}/${rel}`, label: this.labels[g] };
  }

  /** Row i's class name (null: unlabeled) without building its paths. */
  labelOf(i: number): string | null {
    return this.labels[this.group[i]];
  }
}

/** Every entry as an array (small lists: tests, messages). */
export const entryArray = (list: EntryList): ImageEntry[] => Array.from({ length: list.length }, (_, i) => list.at(i)!);

const labelOf = (list: EntryList, i: number) =>
  list instanceof PackedEntries ? list.labelOf(i) : (list.at(i)?.label ?? null);

/** Decoded rows (`kept`: indices into list.entries) + their labels and ids -> a Dataset. */
export function imageDataset(
  list: Pick<ImageList, 'entries' | 'classes'>,
  decoded: { rows: Rows; shape: [number, number, number]; kept: Int32Array },
): Dataset {
  const index = new Map(list.classes.map((c, i) => [c, i]));
  const { kept } = decoded;
  const n = kept.length;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = labelOf(list.entries, kept[i]);
    const c = label === null ? -1 : index.get(label);
    if (c === undefined) throw new Error(`row ${kept[i]}: label '${label}' is not among the list's classes`); // a bug, not bad data
    y[i] = c;
  }
  const entries = list.entries;
  const ids: RowIds = Array.isArray(entries)
    ? Array.from(kept, (k) => (entries as ImageEntry[])[k].id)
    : { length: n, at: (i) => (i >= 0 && i < n ? entries.at(kept[i])!.id : undefined) };
  return { x: decoded.rows, y, n, shape: decoded.shape, classes: [...list.classes], ids };
}
