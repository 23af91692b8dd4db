/** What an item of a {@link LinkedSet} carries: its neighbours (an item is in at most one set). */
export interface Linked<T> {
  linkPrev: T | undefined;
  linkNext: T | undefined;
  /** The set the item is in, if any. */
  linkOwner: object | undefined;
}

/**
 * A set of objects kept as a doubly linked list through fields of the objects themselves: add and
 * delete touch no hash table and allocate nothing. For the memory plane's in-flight requests,
 * added and removed several times per request (a `Set` rehashes and reallocates its table as
 * its size moves between a few and none).
 */
export class LinkedSet<T extends Linked<T>> {
  private head: T | undefined = undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(item: T): void {
    if (item.linkOwner !== undefined) return;
    item.linkOwner = this;
    item.linkPrev = undefined;
    item.linkNext = this.head;
    if (this.head !== undefined) this.head.linkPrev = item;
    this.head = item;
    this.count++;
  }

  delete(item: T): boolean {
    if (item.linkOwner !== this) return false;
    const { linkPrev: prev, linkNext: next } = item;
    if (prev !== undefined) prev.linkNext = next;
    else this.head = next;
    if (next !== undefined) next.linkPrev = prev;
    item.linkPrev = item.linkNext = item.linkOwner = undefined;
    this.count--;
    return true;
  }

  /** The items, as an array (a snapshot: safe to delete from the set while walking it). */
  values(): T[] {
    const out: T[] = [];
    for (let i = this.head; i !== undefined; i = i.linkNext) out.push(i);
    return out;
  }
}
