/**
 * One `Range: bytes=...` header against a file of `size` bytes (RFC 9110 §14). Web seeds (BEP 19)
 * and HTTP resumers ask for one range at a time; a multi-range request is answered with the
 * whole file, which the RFC allows.
 */
export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial', start: number, end: number } // inclusive end
  | { kind: 'unsatisfiable' }

export function parseRange (header: string | undefined, size: number): RangeResult {
  if (header === undefined || header.trim() === '') return { kind: 'full' }
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header)
  if (m === null) return { kind: 'full' } // unknown unit or several ranges: ignoring Range is allowed
  const [, a = '', b = ''] = m
  if (a === '' && b === '') return { kind: 'full' }
  if (a === '') {
    const suffix = Number(b)
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' }
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(a)
  if (start >= size) return { kind: 'unsatisfiable' }
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1)
  if (end < start) return { kind: 'full' } // syntactically invalid: ignore the header
  return { kind: 'partial', start, end }
}
