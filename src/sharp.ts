import sharp from 'sharp';

/**
 * sharp, with libvips' operation cache off. Every image semigan gives sharp is decoded or encoded
 * once (a file of a dataset, a request's body, an epoch's curves and sample grid), so the cache
 * only held memory: a training process's RSS grew by ~0.4 MB per epoch with it, ~0.26 without it
 * (docs/scale.md, "Memory over a long run").
 */
sharp.cache(false);

export default sharp;
