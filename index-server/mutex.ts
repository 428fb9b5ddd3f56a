/**
 * A FIFO async mutex: publishes of the root and the index run one at a time, so two concurrent
 * PUTs are checked against each other's outcome instead of both against the same old state.
 */
export class Mutex {
  #tail: Promise<void> = Promise.resolve()

  async run<T> (fn: () => Promise<T>): Promise<T> {
    const prev = this.#tail
    let release!: () => void
    this.#tail = new Promise<void>((resolve) => { release = resolve })
    await prev
    try {
      return await fn()
    } finally {
      release()
    }
  }
}
