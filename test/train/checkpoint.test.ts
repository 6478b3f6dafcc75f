import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SemiganError } from '../../src/errors.js';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  readCheckpoint,
  writeCheckpoint,
  type Checkpoint,
} from '../../src/train/checkpoint.js';

const bytes = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function sample(metaPad = ''): Checkpoint<Record<string, unknown>> {
  // Values chosen to catch any lossy path: float32 specials and extremes, int32 extremes.
  const f = new Float32Array([
    0,
    -0,
    1.5,
    -2.25,
    Math.PI,
    1e-45 /* denormal */,
    3.4028234663852886e38,
    -Infinity,
    Infinity,
    NaN,
    0.1,
  ]);
  const i32 = new Int32Array([0, 1, -1, 2147483647, -2147483648, 123456789]);
  return {
    meta: {
      pad: metaPad,
      epoch: 3,
      rng: [4294967295, 0, 123, 2654435769],
      config: { lr: 0.003, labels: null, nested: { a: [1, 2, 3], s: 'ünïcødé ✓' } },
    },
    tensors: {
      'd/l0.v': { shape: [11], data: f },
      'orders/lab': { shape: [2, 3], data: i32 },
      'g/empty': { shape: [0], data: new Float32Array(0) },
      'd/l0.b': { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    },
  };
}

function assertSame(got: Checkpoint<unknown>, want: Checkpoint<unknown>): void {
  assert.deepEqual(got.meta, want.meta);
  assert.deepEqual(Object.keys(got.tensors), Object.keys(want.tensors));
  for (const [name, w] of Object.entries(want.tensors)) {
    const g = got.tensors[name];
    assert.deepEqual(g.shape, w.shape, name);
    assert.equal(g.data.constructor, w.data.constructor, `${name}: dtype`);
    assert.ok(bytes(g.data).equals(bytes(w.data)), `${name}: bytes differ`);
  }
}

test('encode/decode round trip is exact for float32 and int32 tensors and the meta (all header paddings)', () => {
  // Header lengths differing by 0..3 bytes exercise every padding to 4-byte alignment.
  for (const pad of ['', 'x', 'xx', 'xxx', 'xxxx']) {
    const ck = sample(pad);
    const buf = encodeCheckpoint(ck);
    assert.equal(buf.toString('latin1', 0, 4), 'SGCK');
    // Data section starts 4-byte aligned: 8 + header length (incl. padding) is a multiple of 4.
    assert.equal((8 + buf.readUInt32LE(4)) % 4, 0);
    // 11 + 6 + 0 + 4 = 21 elements of 4 bytes after the header.
    assert.equal(buf.length, 8 + buf.readUInt32LE(4) + 21 * 4);
    assertSame(decodeCheckpoint(buf, 'mem'), ck);
    // A Buffer at an odd offset inside a larger allocation decodes too (data copied out aligned).
    const shifted = Buffer.concat([Buffer.alloc(3), buf]).subarray(3);
    assert.notEqual(shifted.byteOffset % 4, 0);
    assertSame(decodeCheckpoint(shifted, 'mem'), ck);
  }
});

test('writeCheckpoint/readCheckpoint round trip through a file (atomic: no temp file left)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'semigan-ckpt-'));
  try {
    const path = join(dir, 'checkpoint.bin');
    const ck = sample('file');
    await writeCheckpoint(path, ck);
    assertSame(readCheckpoint(path), ck);
    // Overwrite with different content: the reader sees the new one.
    const ck2 = sample('second');
    ck2.tensors['d/l0.b'].data = new Float32Array([9, 8, 7, 6]);
    await writeCheckpoint(path, ck2);
    assertSame(readCheckpoint(path), ck2);
    assert.deepEqual(readdirSync(dir), ['checkpoint.bin']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const semiganError = (path: string, re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof SemiganError, `expected a SemiganError, got ${e}`);
  assert.equal(e.code, 'SEMIGAN_ERR_RUN_DIR');
  assert.ok(e.message.includes(path), `message names the path: ${e.message}`);
  assert.match(e.message, re);
  return true;
};

test('truncated checkpoint file -> SemiganError naming the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'semigan-ckpt-'));
  try {
    const path = join(dir, 'checkpoint.bin');
    await writeCheckpoint(path, sample());
    const full = readFileSync(path);
    const headerEnd = 8 + full.readUInt32LE(4);
    // Cut inside the tensor data (last byte missing, and half the data missing).
    for (const cut of [full.length - 1, headerEnd + 10]) {
      writeFileSync(path, full.subarray(0, cut));
      assert.throws(() => readCheckpoint(path), semiganError(path, /truncated/));
    }
    // Cut inside the header.
    writeFileSync(path, full.subarray(0, 20));
    assert.throws(() => readCheckpoint(path), semiganError(path, /header of \d+ bytes but the file has 20/));
    // Cut inside the 8-byte preamble; and an empty file.
    for (const cut of [6, 0]) {
      writeFileSync(path, full.subarray(0, cut));
      assert.throws(() => readCheckpoint(path), semiganError(path, /not a readable semigan checkpoint/));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('wrong magic, corrupt header, other format version, missing file -> errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'semigan-ckpt-'));
  try {
    const path = join(dir, 'checkpoint.bin');
    const good = encodeCheckpoint(sample());

    const wrongMagic = Buffer.from(good);
    wrongMagic.write('PK\x03\x04', 0, 'latin1'); // e.g. a zip file
    writeFileSync(path, wrongMagic);
    assert.throws(() => readCheckpoint(path), semiganError(path, /magic "SGCK"/));

    const badJson = Buffer.from(good);
    badJson[8] = 0x7b + 1; // '{' -> '|'
    writeFileSync(path, badJson);
    assert.throws(() => readCheckpoint(path), semiganError(path, /not valid JSON/));

    const headerLen = good.readUInt32LE(4);
    const header = JSON.parse(good.toString('utf8', 8, 8 + headerLen));
    header.format = 3;
    const json = Buffer.from(JSON.stringify(header));
    const h2 = Buffer.concat([json, Buffer.alloc(headerLen - json.length, 0x20)]);
    assert.equal(h2.length, headerLen, 'same header length (format 2 -> 3)');
    writeFileSync(path, Buffer.concat([good.subarray(0, 8), h2, good.subarray(8 + headerLen)]));
    assert.throws(() => readCheckpoint(path), semiganError(path, /format 3, this semigan reads formats 1 and 2/));

    // Format 1 (no checksums, written before them) is still read.
    const v1 = { ...JSON.parse(good.toString('utf8', 8, 8 + headerLen)), format: 1 };
    for (const t of v1.tensors) delete t.crc32;
    const j1 = Buffer.from(JSON.stringify(v1));
    const h1 = Buffer.concat([j1, Buffer.alloc(headerLen - j1.length, 0x20)]);
    writeFileSync(path, Buffer.concat([good.subarray(0, 8), h1, good.subarray(8 + headerLen)]));
    assert.deepEqual(Object.keys(readCheckpoint(path).tensors), Object.keys(sample().tensors));

    // A flipped bit in a tensor fails its CRC.
    const flipped = Buffer.from(good);
    flipped[flipped.length - 1] ^= 1;
    writeFileSync(path, flipped);
    assert.throws(() => readCheckpoint(path), semiganError(path, /does not match its checksum/));

    const missing = join(dir, 'nope.bin');
    assert.throws(() => readCheckpoint(missing), semiganError(missing, /no such checkpoint/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
