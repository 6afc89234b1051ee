/**
 * `Promise.withResolvers` (ES2024, Node 22) where the runtime lacks it: the Restate SDK
 * (@restatedev/restate-sdk 1.17) calls it on every invocation, and this project also runs on
 * Node 20 (package.json engines). The standard's own definition; nothing else of Node 22 is
 * needed (the SDK feature-detects `Uint8Array.fromBase64`).
 */
interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

const withResolvers = <T>(): Resolvers<T> => {
  let resolve!: Resolvers<T>['resolve'];
  let reject!: Resolvers<T>['reject'];
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

const promiseStatics = Promise as unknown as { withResolvers?: unknown };
if (typeof promiseStatics.withResolvers !== 'function') promiseStatics.withResolvers = withResolvers;
