// Plain-text tables for the CLI: columns padded to their widest cell, two spaces apart, no trailing
// blanks, no colours (the output is meant for people and for `grep`; scripts use --json).

/** Formats a header row and data rows as aligned columns, one line each, ending with a newline. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows]
  const widths = headers.map((_, i) => Math.max(...all.map(r => (r[i] ?? '').length)))
  return all.map(r => headers.map((_, i) => {
    const cell = r[i] ?? ''
    return i === headers.length - 1 ? cell : cell.padEnd(widths[i]!)
  }).join('  ').trimEnd()).join('\n') + '\n'
}

/** Two aligned columns, key then value: for one record (`inspect`). */
export function formatPairs(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length))
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`.trimEnd()).join('\n') + '\n'
}
