import { AlreadyExistsError } from "../errors/errors.js";

/** What a record needs to be indexed: its id and the identity the name registry holds. */
export interface IndexedRecord {
  id: string;
  nameKey: string;
}

/**
 * An in-memory index of records (a cache of what containerd and the state dir hold) with a
 * name registry: one identity maps to one id while that record exists, so a second create
 * with the same identity is refused with the holder's id. Lookups accept the full id or a
 * unique prefix, as crictl users type 13-character ids.
 */
export class RecordIndex<T extends IndexedRecord> {
  private readonly byId = new Map<string, T>();
  private readonly names = new Map<string, string>();

  /** `noun` names the kind of record in errors ("pod sandbox", "container"). */
  constructor(private readonly noun: string) {}

  /** Reserves an identity for an id; refuses when another record holds it. */
  reserve(nameKey: string, id: string): void {
    const holder = this.names.get(nameKey);
    if (holder && holder !== id) {
      throw new AlreadyExistsError(`${this.noun} name "${nameKey}" is already reserved for ${this.noun} ${holder}; remove it first`);
    }
    this.names.set(nameKey, id);
  }

  /** The record holding an identity, when one does (a reserved but unadded id has none). */
  holderOf(nameKey: string): T | undefined {
    const id = this.names.get(nameKey);
    return id === undefined ? undefined : this.byId.get(id);
  }

  release(nameKey: string, id: string): void {
    if (this.names.get(nameKey) === id) this.names.delete(nameKey);
  }

  add(rec: T): void {
    this.byId.set(rec.id, rec);
    this.names.set(rec.nameKey, rec.id);
  }

  delete(id: string): void {
    const rec = this.byId.get(id);
    if (!rec) return;
    this.byId.delete(id);
    this.release(rec.nameKey, id);
  }

  /** By full id or unique prefix; an ambiguous prefix finds nothing. */
  get(idOrPrefix: string): T | undefined {
    const exact = this.byId.get(idOrPrefix);
    if (exact || idOrPrefix.length === 0) return exact;
    let hit: T | undefined;
    for (const [id, rec] of this.byId) {
      if (!id.startsWith(idOrPrefix)) continue;
      if (hit) return undefined;
      hit = rec;
    }
    return hit;
  }

  all(): T[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }
}
