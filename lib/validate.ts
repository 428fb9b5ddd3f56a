import type { TSchema, Static } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'

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
  const missing = new Set<string>()
  for (const e of checker.Errors(value)) {
    for (const line of explain(e.schema, e.path, e.value, e.message)) {
      // a missing field is one problem, not also "Expected string" for the same field
      const field = line.slice(0, line.indexOf(': '))
      if (seen.has(line) || missing.has(field)) continue
      if (line.includes('Expected required property')) missing.add(field)
      seen.add(line)
      out.push(line)
    }
    if (out.length >= limit) break
  }
  return out.slice(0, limit)
}

type Variant = TSchema & { const?: unknown, properties?: Record<string, TSchema & { const?: unknown }> }

/**
 * TypeBox says only "Expected union value" when a value matches no branch of a union, which
 * names no field an operator could fix. So: a union of literals lists its allowed values, and a
 * union of objects told apart by a literal field (a target's `type`) is checked against the
 * branch that field picks, whose own problems are named; or the allowed values of that field.
 * Any other union says what it takes: its own description, or each branch's (a described
 * string, a literal).
 */
function explain (schema: TSchema, path: string, value: unknown, message: string): string[] {
  const variants = (schema as { anyOf?: Variant[] }).anyOf
  if (variants === undefined) return [`${pointerToPath(path)}: ${describe(schema, message, value)}`]
  if (variants.every((v) => v.const !== undefined)) {
    return [`${pointerToPath(path)}: must be one of ${variants.map((v) => JSON.stringify(v.const)).join(', ')}, not ${JSON.stringify(value)}`]
  }
  const key = discriminant(variants)
  if (key !== undefined && typeof value === 'object' && value !== null) {
    const given = (value as Record<string, unknown>)[key]
    const branch = variants.find((v) => v.properties?.[key]?.const === given)
    const at = (p: string): string => pointerToPath(path + p)
    if (branch === undefined) {
      return [`${at(`/${key}`)}: must be one of ${variants.map((v) => JSON.stringify(v.properties?.[key]?.const)).join(', ')}, not ${JSON.stringify(given)}`]
    }
    // defaults are filled in only once a branch matches, so fill in this branch's before judging it
    const filled = Value.Default(branch, structuredClone(value))
    return [...checkerFor(branch).Errors(filled)].flatMap((e) => explain(e.schema, path + e.path, e.value, e.message))
  }
  const own = (schema as { description?: string }).description
  const takes = typeof own === 'string' ? [own] : variants.map((v) => v.const !== undefined ? JSON.stringify(v.const) : v.description)
  if (value !== undefined && takes.every((d) => typeof d === 'string')) return [`${pointerToPath(path)}: ${JSON.stringify(value)} is not valid: ${takes.join('; or ')}`]
  return [`${pointerToPath(path)}: ${describe(schema, message, value)}`]
}

/** The field whose literal value tells the object branches of a union apart, if there is one. */
function discriminant (variants: Variant[]): string | undefined {
  const first = variants[0]?.properties
  if (first === undefined) return undefined
  return Object.keys(first).find((k) => variants.every((v) => v.properties?.[k]?.const !== undefined) &&
    new Set(variants.map((v) => v.properties?.[k]?.const)).size === variants.length)
}

function describe (schema: TSchema, message: string, value: unknown): string {
  const s = schema as { description?: string, format?: string }
  if (typeof s.description !== 'string') return message
  // "Expected string to match 'imgdist-timer-duration-2147483647' format" names a check that
  // means nothing to whoever edits the file; the description says what is wanted
  if (typeof s.format === 'string' && value !== undefined) return `${JSON.stringify(value)} is not valid: ${s.description}`
  return `${message} (${s.description})`
}

export function isValid<T extends TSchema> (schema: T, value: unknown): value is Static<T> {
  return checkerFor(schema).Check(value)
}
