import type { Static, TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parse } from 'yaml'
import { yamlProblemLine } from './document.js'
import { ConfigError } from './errors.js'
import { schemaProblems } from './validate.js'

export const MAX_CONFIG_BYTES = 1024 * 1024

/**
 * Validates a config once, at start-up: defaults from the schema are filled in, then every bad
 * field is named in one error (`ConfigError.problems`), so an operator fixes the file in one go.
 * The caller reads the file; this function does no I/O.
 */
export function loadConfig<T extends TSchema> (schema: T, text: string, what: string): Static<T> {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new ConfigError(`${what} is larger than ${MAX_CONFIG_BYTES} bytes`)
  let raw: unknown
  try {
    raw = parse(text, { schema: 'core', merge: false, uniqueKeys: true, maxAliasCount: 16 })
  } catch (err) {
    throw new ConfigError(`${what} is not valid YAML`, [yamlProblemLine(String((err as Error).message))])
  }
  return validateConfig(schema, raw ?? {}, what)
}

export function validateConfig<T extends TSchema> (schema: T, raw: unknown, what: string): Static<T> {
  const value = Value.Default(schema, structuredClone(raw))
  const problems = schemaProblems(schema, value, 50)
  if (problems.length > 0) throw new ConfigError(`${what} is invalid`, problems)
  return value as Static<T>
}
