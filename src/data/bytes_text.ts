/** A byte count for people: "100 B", "43 KiB", "179 MiB", "5.7 GiB". */
export function bytesText(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= 2 ** 20) return `${Math.round(bytes / 2 ** 20).toLocaleString('en-US')} MiB`;
  if (bytes >= 2 ** 10) return `${Math.round(bytes / 2 ** 10).toLocaleString('en-US')} KiB`;
  return `${bytes} B`;
}
