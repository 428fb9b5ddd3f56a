import { parseArgs, type ParseArgsConfig } from 'node:util'
import { parseDuration } from '../lib/duration.js'
import { UsageError } from '../lib/errors.js'

/**
 * node:util parseArgs with imgdist-sign's conventions: unknown flags and missing values are
 * usage errors that point at the command's --help, and every command accepts -h/--help.
 */

type Options = NonNullable<ParseArgsConfig['options']>

export interface Parsed<V> { values: V, positionals: string[], help: boolean }

export function parseCommandArgs (command: string, argv: string[], options: Options): Parsed<Record<string, string | boolean | string[] | undefined>> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true
    })
    const v = values as Record<string, string | boolean | string[] | undefined>
    return { values: v, positionals, help: v.help === true }
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? 'bad arguments'
    throw new UsageError(`${msg.replace(/\. To specify a positional argument.*$/, '')} (see imgdist-sign ${command} --help)`)
  }
}

export function str (v: unknown): string | undefined { return typeof v === 'string' ? v : undefined }
export function list (v: unknown): string[] { return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [] }

export function required (command: string, v: unknown, flag: string): string {
  const s = str(v)
  if (s === undefined || s === '') throw new UsageError(`${command}: ${flag} is required (see imgdist-sign ${command} --help)`)
  return s
}

export function integer (v: string | undefined, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag} must be a whole number, got "${v}"`)
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${v}`)
  return n
}

export function duration (v: string | undefined, flag: string): number | undefined {
  return v === undefined ? undefined : parseDuration(v, flag)
}

export function onePositional (command: string, positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`${command}: missing ${what} (see imgdist-sign ${command} --help)`)
  if (positionals.length > 1) throw new UsageError(`${command}: expected one ${what}, got ${positionals.length}: ${positionals.join(' ')}`)
  return positionals[0] as string
}

export function noPositionals (command: string, positionals: string[]): void {
  if (positionals.length > 0) throw new UsageError(`${command}: unexpected argument "${positionals[0] as string}" (see imgdist-sign ${command} --help)`)
}
