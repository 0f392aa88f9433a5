/**
 * A registry of named plugins (capacity measures, proxies, alpha strategies, importance rules):
 * one interface per kind, one `register` call per plugin, and lookups that name the known ones
 * when a name is unknown.
 */
export interface Registry<T extends { readonly name: string }> {
  register(item: T): void;
  /** The item called `name`; an Error listing the known names otherwise. */
  get(name: string): T;
  /** Every item, in registration order. */
  list(): T[];
}

/** `what` names the kind in messages (`unknown capacity measure "x" (known: ...)`). */
export function createRegistry<T extends { readonly name: string }>(what: string): Registry<T> {
  const items = new Map<string, T>();
  return {
    register(item) {
      if (items.has(item.name)) throw new Error(`${what} "${item.name}" is already registered`);
      items.set(item.name, item);
    },
    get(name) {
      const item = items.get(name);
      if (!item) throw new Error(`unknown ${what} "${name}" (known: ${[...items.keys()].join(', ')})`);
      return item;
    },
    list: () => [...items.values()],
  };
}
