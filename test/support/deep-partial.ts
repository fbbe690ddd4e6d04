/** What ts-proto's fromPartial accepts (its own DeepPartial is not exported). */
export type DeepPartial<T> = T extends bigint
  ? bigint
  : T extends Buffer
    ? Buffer
    : T extends Array<infer U>
      ? Array<DeepPartial<U>>
      : T extends object
        ? { [K in keyof T]?: DeepPartial<T[K]> }
        : T;
