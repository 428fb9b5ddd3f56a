// Minimal typings for untyped dependencies: only what imgdist calls.
declare module 'bencode' {
  const bencode: {
    encode: (value: unknown) => Uint8Array
    decode: (data: Uint8Array, start?: number, end?: number, encoding?: string) => unknown
  }
  export default bencode
}
