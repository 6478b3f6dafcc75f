#!/usr/bin/env python3
"""PyTorch reference for a conv preset's training iteration (bench/presets.ts --torch runs it).

The same layers as semigan's conv presets (src/models/conv_small.ts, conv_large.ts; conv-large is
the paper's CIFAR-10 D and G of the official improved-gan code), the same batch (B labeled +
B unlabeled + B generated rows through D, then a G step with feature matching), Adam on both:

  D: dropout -> weight-normed convs (+ bias, leaky ReLU 0.2; dropout between blocks) -> global
     average pool (the features) -> weight-normed dense K. Only the output layer's g is trained.
  G: z ~ U[0,1) -> dense to (H0 x W0 x base), batch norm (shift only) + ReLU -> transposed convs
     stride 2 with batch norm + ReLU -> weight-normed transposed conv stride 2 to c, sigmoid, crop.

Random pixels in [0, 1) stand in for data (the cost of a step does not depend on them). Prints
one JSON line: {"preset", "iter_ms_median", "iters", "threads", "torch"}.

  python3 scripts/bench/torch_conv_step.py --preset conv-small --shape 28,28,1 --iters 10 --threads 2
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

PLANS = {
    # (kind, filters, kernel, stride, padding) or ('dropout', rate)
    'conv-small': dict(
        trunk=[('dropout', 0.2), ('conv', 16, 3, 1, 'same'), ('conv', 32, 3, 2, 'same'), ('dropout', 0.5),
               ('conv', 32, 3, 1, 'same'), ('conv', 64, 3, 2, 'same')],
        gen_base=64, gen_deconvs=[32], gen_kernel=4),
    'conv-large': dict(
        trunk=[('dropout', 0.2), ('conv', 96, 3, 1, 'same'), ('conv', 96, 3, 1, 'same'), ('conv', 96, 3, 2, 'same'),
               ('dropout', 0.5), ('conv', 192, 3, 1, 'same'), ('conv', 192, 3, 1, 'same'),
               ('conv', 192, 3, 2, 'same'), ('dropout', 0.5), ('conv', 192, 3, 1, 'valid'),
               ('conv', 192, 1, 1, 'same'), ('conv', 192, 1, 1, 'same')],
        gen_base=512, gen_deconvs=[256, 128], gen_kernel=5),
}


def same_pad(size, kernel, stride):
    """TF 'same' padding (before, after) for one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def weight_norm(v, g, dims):
    return v * (g / v.pow(2).sum(dim=dims, keepdim=True).sqrt())


class D(torch.nn.Module):
    def __init__(self, plan, c, k):
        super().__init__()
        self.steps = []
        cin = c
        self.v, self.g, self.b = torch.nn.ParameterList(), [], torch.nn.ParameterList()
        for s in plan['trunk']:
            if s[0] == 'conv':
                _, f, ks, st, pad = s
                self.v.append(torch.nn.Parameter(torch.randn(f, cin, ks, ks) * 0.05))
                self.g.append(torch.ones(f, 1, 1, 1))  # not trained, as the official model
                self.b.append(torch.nn.Parameter(torch.zeros(f)))
                cin = f
            self.steps.append(s)
        self.out_v = torch.nn.Parameter(torch.randn(k, cin) * 0.05)
        self.out_g = torch.nn.Parameter(torch.ones(k, 1))
        self.out_b = torch.nn.Parameter(torch.zeros(k))

    def forward(self, x):
        i = 0
        for s in self.steps:
            if s[0] == 'dropout':
                x = F.dropout(x, s[1], training=True)
                continue
            _, f, ks, st, pad = s
            if pad == 'same':
                (t, bo), (l, r) = same_pad(x.shape[2], ks, st), same_pad(x.shape[3], ks, st)
                x = F.pad(x, (l, r, t, bo))
            w = weight_norm(self.v[i], self.g[i], (1, 2, 3))
            x = F.leaky_relu(F.conv2d(x, w, self.b[i], stride=st), 0.2)
            i += 1
        features = x.mean(dim=(2, 3))
        return F.linear(features, weight_norm(self.out_v, self.out_g, (1,)), self.out_b), features


class G(torch.nn.Module):
    def __init__(self, plan, h, w, c, z_dim=100):
        super().__init__()
        ups = len(plan['gen_deconvs']) + 1
        self.h0, self.w0 = math.ceil(h / 2 ** ups), math.ceil(w / 2 ** ups)
        self.h, self.w, self.base, self.k = h, w, plan['gen_base'], plan['gen_kernel']
        self.fc = torch.nn.Parameter(torch.randn(z_dim, self.h0 * self.w0 * self.base) * 0.05)
        self.fc_shift = torch.nn.Parameter(torch.zeros(self.h0 * self.w0 * self.base))
        self.dc, self.dc_shift = torch.nn.ParameterList(), torch.nn.ParameterList()
        cin = self.base
        for cout in plan['gen_deconvs']:
            self.dc.append(torch.nn.Parameter(torch.randn(cin, cout, self.k, self.k) * 0.05))
            self.dc_shift.append(torch.nn.Parameter(torch.zeros(cout)))
            cin = cout
        self.out_v = torch.nn.Parameter(torch.randn(cin, c, self.k, self.k) * 0.05)
        self.out_g = torch.nn.Parameter(torch.ones(1, c, 1, 1))
        self.out_b = torch.nn.Parameter(torch.zeros(c))

    def up(self, x, weight, bias=None):
        # Output exactly 2H x 2W, as TF's 'same' transposed conv (padding placed as PyTorch does).
        p = (self.k - 1) // 2
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=p, output_padding=2 + 2 * p - self.k)

    def forward(self, z):
        hid = z @ self.fc
        hid = F.relu((hid - hid.mean(0)) / (hid.var(0, unbiased=False) + 1e-5).sqrt() + self.fc_shift)
        x = hid.reshape(z.shape[0], self.h0, self.w0, self.base).permute(0, 3, 1, 2)
        for w, shift in zip(self.dc, self.dc_shift):
            a = self.up(x, w)
            mean, var = a.mean((0, 2, 3), keepdim=True), a.var((0, 2, 3), unbiased=False, keepdim=True)
            x = F.relu((a - mean) / (var + 1e-5).sqrt() + shift.reshape(1, -1, 1, 1))
        img = torch.sigmoid(self.up(x, weight_norm(self.out_v, self.out_g.transpose(0, 1), (0, 2, 3)), self.out_b))
        top, left = (img.shape[2] - self.h) // 2, (img.shape[3] - self.w) // 2
        return img[:, :, top:top + self.h, left:left + self.w]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--preset', choices=sorted(PLANS), default='conv-small')
    ap.add_argument('--shape', default='28,28,1', help='h,w,c of the images')
    ap.add_argument('--classes', type=int, default=10)
    ap.add_argument('--batch', type=int, default=100)
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    h, w, c = (int(s) for s in a.shape.split(','))
    plan = PLANS[a.preset]
    d, g = D(plan, c, a.classes), G(plan, h, w, c)
    opt_d = torch.optim.Adam(d.parameters(), lr=3e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=3e-4, betas=(0.5, 0.999))
    b = a.batch
    x_lab, x_unl, x_unl2 = (torch.rand(b, c, h, w) for _ in range(3))
    y_lab = torch.randint(0, a.classes, (b,))

    def step():
        with torch.no_grad():
            fake = g(torch.rand(b, 100))
        logits, _ = d(torch.cat([x_lab, x_unl, fake]))
        lab, unl, fk = logits[:b], logits[b:2 * b], logits[2 * b:]
        lse_u, lse_f = torch.logsumexp(unl, 1), torch.logsumexp(fk, 1)
        loss_d = F.cross_entropy(lab, y_lab) + 0.5 * (
            (F.softplus(lse_u) - lse_u).mean() + F.softplus(lse_f).mean())
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        _, feats = d(torch.cat([x_unl2, g(torch.rand(b, 100))]))
        loss_g = (feats[:b].detach().mean(0) - feats[b:].mean(0)).pow(2).mean()
        grads = torch.autograd.grad(loss_g, list(g.parameters()))
        for p, gr in zip(g.parameters(), grads):
            p.grad = gr
        opt_g.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({'preset': a.preset, 'iter_ms_median': statistics.median(times), 'iters': a.iters,
                      'threads': a.threads, 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
