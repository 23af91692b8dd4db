/**
 * `ChangedSlots`: the set of slots whose figures changed since it was last cleared, each listed
 * once, in the order first marked: what the router's search re-keys before a decision. Marking is
 * a flag test; reading is a walk over `slots[0..count)`.
 * @packageDocumentation
 */

/** See the module comment. Slots are small non-negative integers. */
export class ChangedSlots {
  /** The changed slots: read `slots[0..count)`. */
  slots = new Int32Array(16);
  /** How many. */
  count = 0;
  private flags = new Uint8Array(16);

  /** Notes that `slot` changed (once until {@link ChangedSlots.clear}). */
  mark(slot: number): void {
    if (slot >= this.flags.length) this.grow(slot);
    if (this.flags[slot] === 1) return;
    this.flags[slot] = 1;
    this.slots[this.count++] = slot;
  }

  /** Forgets the changed slots (after reading them). */
  clear(): void {
    for (let k = 0; k < this.count; k++) this.flags[this.slots[k]!] = 0;
    this.count = 0;
  }

  private grow(slot: number): void {
    let n = this.flags.length;
    while (n <= slot) n *= 2;
    const flags = new Uint8Array(n);
    flags.set(this.flags);
    this.flags = flags;
    const slots = new Int32Array(n);
    slots.set(this.slots);
    this.slots = slots;
  }
}
