/** A benchmark option that must be a positive integer (parseArgs gives strings). */
export function positiveIntOption(values: Record<string, unknown>, name: string): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer; got ${values[name]}`);
  return v;
}
