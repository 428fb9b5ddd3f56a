import { parseArgs } from 'node:util'
import { UsageError } from '../lib/errors.js'

/** `--name value` flags of the bench mains, numbers checked once with the flag named. */

export function parseFlags<K extends string> (argv: string[], spec: Record<K, string>, usage: string): Record<K, string> & { help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } }
  for (const k of Object.keys(spec)) options[k] = { type: 'string' }
  let values: Record<string, unknown>
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${usage}`)
  }
  const out = { help: values.help === true } as Record<K, string> & { help: boolean }
  for (const [k, d] of Object.entries(spec) as Array<[K, string]>) (out as Record<string, unknown>)[k] = typeof values[k] === 'string' ? values[k] : d
  return out
}

export function num (flags: Record<string, unknown>, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = String(flags[name])
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name}: expected a number in [${min}, ${max}], got "${raw}"`)
  return n
}
