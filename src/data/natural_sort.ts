/** Natural order for names ("2" before "10", "img9" before "img10"), identical on every machine. */
const collator = new Intl.Collator('en', { numeric: true });

/** Collation first; strings it finds equal ("01" and "1") fall back to code-unit order, so the order is total. */
export function naturalCompare(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}
