/**
 * A FIFO queue with O(1) amortized push, shift and unshift (an array with a moving head,
 * compacted when the dead prefix grows), for the hot paths of the in-memory transports.
 */
export class Deque<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  /** Number of items held. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** Appends at the tail. */
  push(value: T): void {
    this.items.push(value);
  }

  /** Inserts at the head (the next {@link Deque.shift} returns it). */
  unshift(value: T): void {
    if (this.head > 0) {
      this.head -= 1;
      this.items[this.head] = value;
    } else {
      this.items.unshift(value);
    }
  }

  /** Removes and returns the head, or undefined when empty. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const value = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return value;
  }

  /** The head without removing it. */
  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  /** Removes every item. */
  clear(): void {
    this.items = [];
    this.head = 0;
  }

  /** Iterates head to tail without removing. */
  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as T;
  }
}
