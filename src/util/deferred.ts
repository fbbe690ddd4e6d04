/** A promise with its settle functions outside it (Node 20 has no Promise.withResolvers). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
  /** True once resolve or reject was called. */
  readonly settled: boolean;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d = {
    promise,
    settled: false,
    resolve(value: T) {
      d.settled = true;
      resolve(value);
    },
    reject(err: unknown) {
      d.settled = true;
      reject(err);
    },
  };
  return d;
}
