import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'

/**
 * Schema checking shared by documents, configs and HTTP bodies. Returns every problem, each
 * naming its field as a dotted path (`images[2].sha512`), so a person can fix a file in one go.
 */

/**
 * Checks of one schema interpreted (`Value.Check`) before it is compiled. Compiling generates
 * and evaluates code (`new Function`): 5–15 ms per schema on the bench machine, against under
 * 1 ms to interpret one check. A config is checked once per process and a catalogue once per
 * poll, so compiling them only slowed every agent's start (seven starting at once on two cores
 * in bench:swarm); what is checked often (an index server's incoming reports) is compiled once
 * it has been checked this many times.
 */
export const INTERPRETED_CHECKS = 8

/** One schema's checks: interpreted at first, compiled once it proves to be checked often. */
export class SchemaCheck {
  readonly #schema: TSchema
  #uses = 0
  #compiled?: TypeCheck<TSchema>

  constructor (schema: TSchema) { this.#schema = schema }

  get compiled (): boolean { return this.#compiled !== undefined }

  check (value: unknown): boolean {
    if (this.#compiled === undefined && ++this.#uses > INTERPRETED_CHECKS) this.#compiled = TypeCompiler.Compile(this.#schema)
    return this.#compiled !== undefined ? this.#compiled.Check(value) : Value.Check(this.#schema, value)
  }
}

const checks = new WeakMap<TSchema, SchemaCheck>()

/** The process-wide check of `schema` (schemas are module constants, so each is counted once). */
export function schemaCheck (schema: TSchema): SchemaCheck {
  let c = checks.get(schema)
  if (c === undefined) {
    c = new SchemaCheck(schema)
    checks.set(schema, c)
  }
  return c
}

export function pointerToPath (pointer: string): string {
  if (pointer === '') return '(document)'
  return pointer.slice(1).split('/').map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => /^\d+$/.test(seg) ? `${acc}[${seg}]` : acc === '' ? seg : `${acc}.${seg}`, '')
}

/** All schema problems of `value`, at most `limit`, as "field: message" lines. */
export function schemaProblems (schema: TSchema, value: unknown, limit = 20): string[] {
  if (schemaCheck(schema).check(value)) return []
  const out: string[] = []
  const seen = new Set<string>()
  const missing = new Set<string>()
  // errors are always interpreted (a compiled TypeCheck's Errors is Value.Errors too)
  for (const e of Value.Errors(schema, value)) {
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
    return [...Value.Errors(branch, filled)].flatMap((e) => explain(e.schema, path + e.path, e.value, e.message))
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
