/** The list of image files a data source names, before decoding, and the Dataset it becomes. */
import type { Dataset } from '../dataset.js';

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

export interface ImageList {
  entries: ImageEntry[];
  /** Class names, natural-sorted; the Dataset's y indexes them. */
  classes: string[];
  /** Where the list came from (the folder or the manifest), for messages. */
  source: string;
  /** Files that were passed over because their extension is not an image's (to report, never silently). */
  ignored: string[];
}

/** Decoded rows (`kept`: indices into list.entries) + their labels and ids -> a Dataset. */
export function imageDataset(
  list: Pick<ImageList, 'entries' | 'classes'>,
  decoded: { x: Float32Array; shape: [number, number, number]; kept: Int32Array },
): Dataset {
  const index = new Map(list.classes.map((c, i) => [c, i]));
  const n = decoded.kept.length;
  const y = new Int32Array(n);
  const ids: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = list.entries[decoded.kept[i]];
    const c = e.label === null ? -1 : index.get(e.label);
    if (c === undefined) throw new Error(`${e.id}: label '${e.label}' is not among the list's classes`); // a bug, not bad data
    y[i] = c;
    ids[i] = e.id;
  }
  return { x: decoded.x, y, n, shape: decoded.shape, classes: [...list.classes], ids };
}
