import type { ImageEntry } from '../lib/schema.js'
import type { PolicyRule } from './config-schema.js'
import type { ResolvedPolicy } from './config.js'

/**
 * The site's approval, as data: pure functions of (policy, catalogue, entry). Endorsement says
 * an image is what its maintainer built; policy says whether this site wants it.
 */

export type PolicyDecision =
  | { verdict: 'rejected', reason: string }
  | { verdict: 'awaiting-approval', reason: string }
  | { verdict: 'approved', reason: string }

export function globToRegExp (glob: string): RegExp {
  const body = glob.split('').map((c) => c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')).join('')
  return new RegExp(`^${body}$`)
}

function describeRule (rule: PolicyRule): string {
  return Object.entries(rule).map(([k, v]) => `${k}=${String(v)}`).join(',')
}

export function ruleMatches (rule: PolicyRule, catalogue: string, e: ImageEntry): boolean {
  const globs: Array<[string | undefined, string]> = [
    [rule.catalogue, catalogue], [rule.id, e.id], [rule.name, e.name], [rule.os, e.os], [rule.arch, e.arch], [rule.diskFormat, e.diskFormat]
  ]
  for (const [glob, value] of globs) if (glob !== undefined && !globToRegExp(glob).test(value)) return false
  if (rule.maxSize !== undefined && e.size > rule.maxSize) return false
  return true
}

/**
 * `manuallyApproved`: an operator ran `imgdist-agent approve ID` for this image version.
 * Deny wins over allow; size limits are hard; only then does `approval: manual` hold it.
 */
export function decide (policy: ResolvedPolicy, catalogue: string, e: ImageEntry, manuallyApproved: boolean): PolicyDecision {
  const denied = policy.deny.find((r) => ruleMatches(r, catalogue, e))
  if (denied !== undefined) return { verdict: 'rejected', reason: `denied by rule {${describeRule(denied)}}` }
  if (policy.maxSize !== undefined && e.size > policy.maxSize) {
    return { verdict: 'rejected', reason: `size ${e.size} is above policy.maxSize ${policy.maxSize}` }
  }
  if (policy.allow.length > 0 && !policy.allow.some((r) => ruleMatches(r, catalogue, e))) {
    return { verdict: 'rejected', reason: 'matches no allow rule' }
  }
  if (policy.approval === 'manual' && !manuallyApproved) return { verdict: 'awaiting-approval', reason: `policy.approval is manual; to fetch it: imgdist-agent approve ${e.id}` }
  return { verdict: 'approved', reason: manuallyApproved ? 'approved by an operator' : 'approved by policy' }
}

/** When a registered image that is no longer wanted should be retired (grace counted from when it stopped being wanted). */
export function retireDue (policy: ResolvedPolicy, unwantedSince: number, now: number): boolean {
  return now - unwantedSince >= policy.retireGraceMs
}
