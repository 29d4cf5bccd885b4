// Inputs of the suite function "chameleon" (table shapes) and an independent check of the HTML
// it renders: one <tr> per row, and in every row cells column-1 .. column-<cols> in order.

/** One request of "chameleon": render a rows x cols table. */
export interface ChameleonParams {
  readonly rows: number;
  readonly cols: number;
}

export function chameleonInputBytes(params: ChameleonParams): Uint8Array {
  return Buffer.from(JSON.stringify(params));
}

/** Throws an Error naming the first difference between `html` and the expected table. */
export function checkBigtable(html: string, params: ChameleonParams): void {
  const trimmed = html.trim();
  if (!trimmed.startsWith('<table xmlns="http://www.w3.org/1999/xhtml">') || !trimmed.endsWith('</table>')) {
    throw new Error('chameleon: output is not one <table> element');
  }
  const rows = trimmed.split('<tr>').slice(1);
  if (rows.length !== params.rows) throw new Error(`chameleon: ${rows.length} rows, expected ${params.rows}`);
  // Whitespace between the tags is allowed: Chameleon keeps the template's line breaks.
  const cell = /<td>\s*<span class="column-(\d+)">(\d+)<\/span>\s*<\/td>/g;
  rows.forEach((row, r) => {
    if (!row.includes('</tr>')) throw new Error(`chameleon: row ${r} is not closed`);
    let expected = 1;
    for (const m of row.matchAll(cell)) {
      if (m[1] !== String(expected) || m[2] !== String(expected)) {
        throw new Error(`chameleon: row ${r} cell ${expected - 1} is column-${m[1]} with ${m[2]}, expected ${expected}`);
      }
      expected++;
    }
    if (expected - 1 !== params.cols) throw new Error(`chameleon: row ${r} has ${expected - 1} cells, expected ${params.cols}`);
  });
  const tdCount = trimmed.split('<td>').length - 1;
  if (tdCount !== params.rows * params.cols) throw new Error(`chameleon: ${tdCount} <td> elements, expected ${params.rows * params.cols}`);
}
