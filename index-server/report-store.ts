import { Level } from 'level'
import { ImgdistError } from '../lib/errors.js'
import type { ReportSigned } from '../lib/report.js'

/** The newest accepted report of each site, kept in LevelDB under DATA/state across restarts. */
export interface StoredReport { receivedAt: string, report: ReportSigned }

export class ReportStore {
  #db: Level<string, StoredReport>
  #closed = false

  private constructor (db: Level<string, StoredReport>) { this.#db = db }

  static async open (dir: string): Promise<ReportStore> {
    const db = new Level<string, StoredReport>(dir, { valueEncoding: 'json' })
    try {
      await db.open()
    } catch (err) {
      const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
      throw new ImgdistError(locked ? 'STATE_LOCKED' : 'IO_ERROR',
        locked ? `${dir} is in use by another imgdist-index process` : `cannot open ${dir}: ${(err as Error).message}`, { cause: err })
    }
    return new ReportStore(db)
  }

  async get (site: string): Promise<StoredReport | undefined> {
    return await this.#db.get(`report!${site}`)
  }

  async put (site: string, value: StoredReport): Promise<void> {
    await this.#db.put(`report!${site}`, value, { sync: true } as never)
  }

  async delete (site: string): Promise<void> {
    await this.#db.del(`report!${site}`, { sync: true } as never)
  }

  async all (): Promise<StoredReport[]> {
    const out: StoredReport[] = []
    for await (const value of this.#db.values({ gt: 'report!', lt: 'report~' })) out.push(value)
    return out
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#db.close()
  }
}
