import type { TSchema, Static } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'

/**
 * Schema checking shared by documents, configs and HTTP bodies. Returns every problem, each
 * naming its field as a dotted path (`images[2].sha512`), so a person can fix a file in one go.
 */

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>()

function checkerFor<T extends TSchema> (schema: T): TypeCheck<T> {
  let c = compiled.get(schema)
  if (c === undefined) {
    c = TypeCompiler.Compile(schema)
    compiled.set(schema, c)
  }
  return c as TypeCheck<T>
}

export function pointerToPath (pointer: string): string {
  if (pointer === '') return '(document)'
  return pointer.slice(1).split('/').map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => /^\d+$/.test(seg) ? `${acc}[${seg}]` : acc === '' ? seg : `${acc}.${seg}`, '')
}

/** All schema problems of `value`, at most `limit`, as "field: message" lines. */
export function schemaProblems (schema: TSchema, value: unknown, limit = 20): string[] {
  const checker = checkerFor(schema)
  if (checker.Check(value)) return []
  const out: string[] = []
  const seen = new Set<string>()
  for (const e of checker.Errors(value)) {
    const line = `${pointerToPath(e.path)}: ${describe(e.schema, e.message)}`
    if (seen.has(line)) continue
    seen.add(line)
    out.push(line)
    if (out.length >= limit) break
  }
  return out
}

function describe (schema: TSchema, message: string): string {
  const s = schema as { description?: string, pattern?: string }
  if (typeof s.description === 'string') return `${message} (${s.description})`
  return message
}

export function isValid<T extends TSchema> (schema: T, value: unknown): value is Static<T> {
  return checkerFor(schema).Check(value)
}
