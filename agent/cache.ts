/**
 * Which cached images to evict: least recently used first, until the cache fits `maxBytes`.
 * Pure: the caller says which ones are busy (being registered or downloaded) and never evictable.
 */
export interface CacheItem { key: string, size: number, lastUsed: number, busy: boolean }

export function chooseEvictions (items: CacheItem[], maxBytes: number): string[] {
  let total = items.reduce((s, i) => s + i.size, 0)
  const out: string[] = []
  for (const item of [...items].sort((a, b) => a.lastUsed - b.lastUsed)) {
    if (total <= maxBytes) break
    if (item.busy) continue
    out.push(item.key)
    total -= item.size
  }
  return out
}
