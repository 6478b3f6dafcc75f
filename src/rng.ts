/**
 * Seeded random numbers for training (parameter init, noise layers, z, minibatch order).
 *
 * Why not tf.random*: on wasm those are generated in JavaScript anyway (~14 ms per 300k normals),
 * their state cannot be saved, so a resumed run could not continue the same stream. sfc32 is a
 * small, fast, well-tested generator (PractRand-clean) whose whole state is four uint32s that
 * go into every checkpoint.
 */
export type RngState = [number, number, number, number];

/**
 * The ziggurat in native code (the optional addon, src/native/semigan_native.c): fills
 * out[from..] until a draw needs JavaScript (the tail, whose value needs Math.log), returns its
 * index with the draw in state[4]; state[0..3] is the generator. Same arithmetic, so the same
 * numbers.
 */
export interface NativeNormal {
  setZiggurat(k: Float64Array, w: Float64Array, f: Float64Array): void;
  fillNormal(out: Float32Array, from: number, state: Uint32Array, std: number): number;
}
let nativeNormal: NativeNormal | null = null;

/** Use the native sampler (or, with null, JavaScript only) in every Rng from now on. */
export function useNativeNormal(native: NativeNormal | null): void {
  native?.setZiggurat(ZIGGURAT.k, ZIGGURAT.w, ZIGGURAT.f);
  nativeNormal = native;
}

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
   * Fill `out` with N(0, std^2) by the ziggurat method (Marsaglia & Tsang 2000, 128 layers):
   * ~98.8% of draws cost one uint32, a table lookup and a multiply. D's noise layers need ~1.5M
   * normals per training step, where Box-Muller's log/sqrt/cos/sin took ~13% of the step.
   * The layer index and the value come from disjoint bits of the draw (low 7 / high 25), which
   * avoids the correlation of the original single-bits version.
   */
  fillNormal(out: Float32Array, std = 1): Float32Array {
    if (nativeNormal) return this.fillNormalNative(nativeNormal, out, std);
    const { k, w } = ZIGGURAT;
    for (let i = 0; i < out.length; i++) {
      const u = this.nextUint32();
      const layer = u & 127;
      const j = (u | 0) >> 7; // signed, 25 bits
      out[i] = (Math.abs(j) < k[layer] ? j * w[layer] : this.normalSlow(j, layer)) * std;
    }
    return out;
  }

  private readonly nativeState = new Uint32Array(5);

  /** fillNormal with the common case in native code, the slow path here (it draws more). */
  private fillNormalNative(native: NativeNormal, out: Float32Array, std: number): Float32Array {
    const st = this.nativeState;
    for (let i = 0; ; i++) {
      [st[0], st[1], st[2], st[3]] = this.getState();
      i = native.fillNormal(out, i, st, std);
      this.setState([st[0], st[1], st[2], st[3]]);
      if (i >= out.length) return out;
      const u = st[4];
      out[i] = this.normalSlow((u | 0) >> 7, u & 127) * std;
    }
  }

  /** The ziggurat's rare cases: the tail beyond R (layer 0) and the wedges between layers. */
  private normalSlow(j: number, layer: number): number {
    const { k, w, f } = ZIGGURAT;
    for (;;) {
      const x = j * w[layer];
      if (layer === 0) {
        let xt: number;
        let y: number;
        do {
          xt = -Math.log(1 - this.uniform()) / ZIGGURAT_R;
          y = -Math.log(1 - this.uniform());
        } while (y + y < xt * xt);
        return j > 0 ? ZIGGURAT_R + xt : -ZIGGURAT_R - xt;
      }
      if (f[layer] + this.uniform() * (f[layer - 1] - f[layer]) < Math.exp(-0.5 * x * x)) return x;
      const u = this.nextUint32();
      layer = u & 127;
      j = (u | 0) >> 7;
      if (Math.abs(j) < k[layer]) return j * w[layer];
    }
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

/** Right edge of the ziggurat's base layer and its tables for 25-bit signed draws. */
const ZIGGURAT_R = 3.442619855899;
const ZIGGURAT = (() => {
  const m = 2 ** 24; // |j| < 2^24
  const v = 9.91256303526217e-3; // area of each layer
  const k = new Float64Array(128);
  const w = new Float64Array(128);
  const f = new Float64Array(128);
  let d = ZIGGURAT_R;
  let t = d;
  const q = v / Math.exp(-0.5 * d * d);
  k[0] = (d / q) * m;
  k[1] = 0;
  w[0] = q / m;
  w[127] = d / m;
  f[0] = 1;
  f[127] = Math.exp(-0.5 * d * d);
  for (let i = 126; i >= 1; i--) {
    d = Math.sqrt(-2 * Math.log(v / d + Math.exp(-0.5 * d * d)));
    k[i + 1] = (d / t) * m;
    t = d;
    f[i] = Math.exp(-0.5 * d * d);
    w[i] = d / m;
  }
  return { k, w, f };
})();
