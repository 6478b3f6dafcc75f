/**
 * Seeded random numbers for training (parameter init, noise layers, z, minibatch order).
 *
 * Why not tf.random*: on wasm those are generated in JavaScript anyway (~14 ms per 300k normals),
 * their state cannot be saved, so a resumed run could not continue the same stream. sfc32 is a
 * small, fast, well-tested generator (PractRand-clean) whose whole state is four uint32s that
 * go into every checkpoint.
 */
export type RngState = [number, number, number, number];

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.nextUint32(); // mix the seed into all four words
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  getState(): RngState {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  setState([a, b, c, d]: RngState): void {
    this.a = a >>> 0;
    this.b = b >>> 0;
    this.c = c >>> 0;
    this.d = d >>> 0;
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Fill `out` with U[0, 1). */
  fillUniform(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.nextUint32() / 4294967296;
    return out;
  }

  /**
   * Fill `out` with N(0, std^2), Box-Muller: two values per pair of uniforms. For odd lengths the
   * last pair's second value is dropped, so the whole generator state stays four words.
   */
  fillNormal(out: Float32Array, std = 1): Float32Array {
    const n = out.length;
    const twoPi = 2 * Math.PI;
    for (let i = 0; i < n; i += 2) {
      const u1 = (this.nextUint32() + 1) / 4294967297; // (0, 1]: log never sees 0
      const u2 = this.nextUint32() / 4294967296;
      const r = Math.sqrt(-2 * Math.log(u1)) * std;
      const th = twoPi * u2;
      out[i] = r * Math.cos(th);
      if (i + 1 < n) out[i + 1] = r * Math.sin(th);
    }
    return out;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}
