"""Train the shipped lip-sync classifier (src/avatarcast/speech/models/lipsync_en.npz) with torch.

    # 1. data (project venv): tools/lipsync_data.py --out /work/lipsync-train
    # 2. training (a separate venv with torch, never a project dependency):
    python3 -m venv /work/train-venv && /work/train-venv/bin/pip install torch==2.13.0 numpy==1.26.4
    /work/train-venv/bin/python tools/train_lipsync_net.py --data /work/lipsync-train

    # 3. the temporal head (the shipped model): starts from the MLP of step 2 and trains it
    #    jointly with a causal GRU over its last hidden layer, on frame sequences
    /work/train-venv/bin/python tools/train_lipsync_net.py --data /work/lipsync-train \
        --out /tmp/mlp.npz
    /work/train-venv/bin/python tools/train_lipsync_net.py --data /work/lipsync-train \
        --temporal-from /tmp/mlp.npz

    # 4. the ensemble's second model (lipsync_en_seed2.npz): steps 2 and 3 with --seed 2
    #    (--out /tmp/mlp2.npz, then --temporal-from /tmp/mlp2.npz --seed 2
    #    --out src/avatarcast/speech/models/lipsync_en_seed2.npz)

Reads every `<source>.npz` of --data (features, shape labels, utterance ids), gives each
source the weight of --weights (default: equal total weight per source family, see
SOURCE_WEIGHTS), holds out every 10th utterance of each source for a validation figure, and
trains an MLP (standardisation → ReLU layers → 9 shapes) with Adam, dropout, input noise
and label smoothing. Deterministic: fixed seeds, one thread, fixed data order.

--temporal-from: the second stage. Each source's frames are kept in utterance order and
concatenated (training part and validation part separately); a batch is 8 windows of 400
frames (16 s), each from a source drawn with the same weights, the GRU starting from zero at
each window's start as it does at the start of a stream. Loss = the MLP head's cross-entropy
+ the temporal output's (MLP logits + a linear map of the GRU state, zero at the start);
3000 steps, AdamW, one-cycle LR 3e-3, dropout 0.2 (inputs, hidden layers, GRU input), input
noise 0.1, label smoothing 0.05: ~12 min on a loaded 2-core machine.

--teachers (with --temporal-from): distillation. The teachers (stage-2 files of the same
data's standardisation) see each clean window; the mean of their logits, the ensemble's
score, is a soft target at --distil-temperature for both outputs, and the loss is
(1 - --distil-weight) × the hard-label loss above + --distil-weight × T² × the two
Kullback-Leibler divergences. ~13 min with two teachers.

The result is written in the format `lipsync_model.LipSyncModel.from_npz` reads (float16
weight matrices); the run-time inference is numpy only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "avatarcast" / "speech" / "models" / "lipsync_en.npz"
SEED = 20261203
TEMPORAL_SEED = 20261206
CONTEXT = (*range(-16, 0, 2), 0, 1, 2, 3, *range(5, 20, 2))  # = lipsync_model.CONTEXT
FEATURE_VERSION = 3  # = lipsync_model.FEATURE_VERSION
MODEL_FORMAT = 2  # = lipsync_model.MODEL_FORMAT (2: MLP + temporal head)

# Relative total weight of each source (normalised by its frame count): the human clips are
# few, so they are up-weighted; espeak, the old only source, is down-weighted.
SOURCE_WEIGHTS = {
    "espeak": 1.0,
    "piper_joe": 1.0,
    "flite_kal16": 0.6,
    "flite_awb": 0.6,
    "flite_rms": 0.6,
    "festival_kal": 0.6,
    "festival_ked": 0.6,
    "human_mfa_other": 1.0,
    "human_extra": 1.0,
    "human_prompts": 1.0,
    "human_asterisk": 0.5,  # one voice, 23 min: half the weight of a source family
    "human_found": 1.0,
}


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--hidden", type=int, nargs="+", default=[192, 96])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--sources", nargs="*", help="only these sources (default: all found)")
    ap.add_argument("--espeak-weight", type=float, default=SOURCE_WEIGHTS["espeak"])
    ap.add_argument(
        "--seed", type=int, default=None, help="2: the ensemble's second model; others: spread"
    )
    ap.add_argument("--temporal-from", type=Path, help="stage 2: this MLP npz + a causal GRU")
    ap.add_argument("--gru", type=int, default=64, help="stage 2: GRU state size")
    ap.add_argument("--steps", type=int, default=3000, help="stage 2: optimiser steps")
    ap.add_argument(
        "--teachers", type=Path, nargs="+", help="stage 2: distil these stage-2 models' mean"
    )
    ap.add_argument("--distil-weight", type=float, default=0.5, help="stage 2 with --teachers")
    ap.add_argument("--distil-temperature", type=float, default=2.0, help="with --teachers")
    args = ap.parse_args(argv)
    if args.temporal_from is not None:
        return train_temporal(args)
    args.seed = SEED if args.seed is None else args.seed
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    t0 = time.time()
    xs, ys, ws, vx, vy = [], [], [], [], []
    for f in sorted(args.data.glob("*.npz")):
        name = f.stem
        if args.sources and name not in args.sources:
            continue
        if name not in SOURCE_WEIGHTS:
            print(f"  skipping {name} (no weight)")
            continue
        d = np.load(f)
        x, y, u = d["x"], d["y"].astype(np.int64), d["u"]
        val = u % 10 == 9
        xs.append(x[~val])
        ys.append(y[~val])
        sw = args.espeak_weight if name == "espeak" else SOURCE_WEIGHTS[name]
        ws.append(np.full((~val).sum(), sw / max(1, (~val).sum()), np.float64))
        vx.append(x[val])
        vy.append(y[val])
        print(f"  {name}: {y.size} frames ({float(d['audio_s']) / 60:.1f} min)", flush=True)
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys)
    w = np.concatenate(ws)
    w = w / w.sum()
    xv = np.concatenate(vx).astype(np.float32)
    yv = np.concatenate(vy)
    mean = x.mean(axis=0).astype(np.float32)
    scale = (1.0 / (x.std(axis=0) + 1e-3)).astype(np.float32)
    xt = torch.from_numpy((x - mean) * scale)
    yt = torch.from_numpy(y)
    xvt = torch.from_numpy((xv - mean) * scale)
    layers: list[torch.nn.Module] = []
    d_in = x.shape[1]
    for h in args.hidden:
        layers += [torch.nn.Dropout(args.dropout), torch.nn.Linear(d_in, h), torch.nn.ReLU()]
        d_in = h
    layers += [torch.nn.Dropout(args.dropout), torch.nn.Linear(d_in, 9)]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    n = x.shape[0]
    batch = 512
    steps = args.epochs * (n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    sampler_w = torch.from_numpy(w)
    for ep in range(args.epochs):
        net.train()
        # Weighted sampling with replacement: each source contributes its share per epoch.
        order = torch.multinomial(sampler_w, n, replacement=True, generator=gen)
        tot = 0.0
        for i in range(0, n - batch + 1, batch):
            idx = order[i : i + batch]
            xb = xt[idx] + 0.1 * torch.randn(batch, xt.shape[1], generator=gen)
            loss = loss_fn(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss) * batch
        net.eval()
        with torch.no_grad():
            acc = float((net(xvt).argmax(1).numpy() == yv).mean())
        print(f"  epoch {ep + 1}/{args.epochs}: loss {tot / n:.3f}, validation acc {acc:.3f} "
              f"({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    return _write(args.out, _mlp_arrays(mean, scale, lin), t0)


def _mlp_arrays(mean: np.ndarray, scale: np.ndarray, lins: Any) -> dict[str, np.ndarray]:
    """The per-frame MLP in `LipSyncModel.from_npz`'s format (float16 matrices)."""
    arrays: dict[str, np.ndarray] = {
        "mean": mean,
        "scale": scale,
        "context": np.array(CONTEXT),
        "feature_version": np.array(FEATURE_VERSION),
    }
    for i, m in enumerate(lins):
        arrays[f"w{i + 1}"] = m.weight.detach().numpy().T.astype(np.float16)
        arrays[f"b{i + 1}"] = m.bias.detach().numpy().astype(np.float32)
    return arrays


def _write(out: Path, arrays: dict[str, np.ndarray], t0: float) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) in {time.time() - t0:.0f} s")
    return 0


def _temporal_net(w: list[np.ndarray], b: list[np.ndarray], gru: int, dropout: float) -> Any:
    """Stage 2's network: the MLP (weights w, b as in the npz) + a causal GRU over its last
    hidden layer whose linear output (zero at first) is added to the MLP's logits."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.ModuleList(torch.nn.Linear(*w[i].shape) for i in range(3))
            for lin, wi, bi in zip(self.lin, w, b, strict=True):
                lin.weight.data = torch.from_numpy(wi.T.copy())
                lin.bias.data = torch.from_numpy(bi.copy())
            self.gru = torch.nn.GRU(w[1].shape[1], gru, batch_first=True)
            self.out = torch.nn.Linear(gru, 9)
            torch.nn.init.zeros_(self.out.weight)
            torch.nn.init.zeros_(self.out.bias)
            self.drop = torch.nn.Dropout(dropout)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = torch.relu(self.lin[0](self.drop(x)))
            h = torch.relu(self.lin[1](self.drop(h)))
            z = self.lin[2](self.drop(h))
            g, _ = self.gru(self.drop(h))
            return z, z + self.out(g)

    return Net()


# The temporal head's arrays in the model file ↔ the torch network's parameters (torch's GRU
# gate order: reset, update, new; the engine's `TemporalHead` reads them in that order).
_GRU_ARRAYS = (
    ("gru_wi", "gru.weight_ih_l0"), ("gru_wh", "gru.weight_hh_l0"),
    ("gru_bi", "gru.bias_ih_l0"), ("gru_bh", "gru.bias_hh_l0"),
    ("gru_wo", "out.weight"), ("gru_bo", "out.bias"),
)  # fmt: skip


def _load_teacher(path: Path, mean: np.ndarray, scale: np.ndarray) -> Any:
    """A stage-2 model file as a frozen `_temporal_net` in eval mode (a distillation teacher).
    Its standardisation must be the student's (stage 1 computes it from the data alone)."""
    import torch

    d = dict(np.load(path))
    if "gru_wi" not in d:
        raise SystemExit(f"--teachers: {path} has no temporal head (a stage-2 file is needed)")
    if not (np.array_equal(d["mean"], mean) and np.array_equal(d["scale"], scale)):
        raise SystemExit(f"--teachers: {path} standardises its inputs differently")
    f32 = {k: v.astype(np.float32) for k, v in d.items()}
    net = _temporal_net(
        [f32[f"w{i}"] for i in (1, 2, 3)], [f32[f"b{i}"] for i in (1, 2, 3)],
        f32["gru_wo"].shape[0], 0.0,
    )  # fmt: skip
    params = dict(net.named_parameters())
    for key, name in _GRU_ARRAYS:
        a = f32[key]
        params[name].data = torch.from_numpy((a.T if a.ndim == 2 else a).copy())
    net.eval()
    for prm in net.parameters():
        prm.requires_grad_(False)
    return net


def train_temporal(args: argparse.Namespace) -> int:
    """Stage 2: the MLP of --temporal-from + a causal GRU over its last hidden layer, jointly."""
    import torch

    seed = TEMPORAL_SEED if args.seed is None else args.seed
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    init = dict(np.load(args.temporal_from))
    if "gru_wi" in init or len([k for k in init if k[0] == "w" and k[1:].isdigit()]) != 3:
        raise SystemExit("--temporal-from needs an MLP with two hidden layers (stage 1's output)")
    mean, scale = init["mean"].astype(np.float32), init["scale"].astype(np.float32)
    w = [init[f"w{i}"].astype(np.float32) for i in (1, 2, 3)]
    b = [init[f"b{i}"].astype(np.float32) for i in (1, 2, 3)]
    # Per source: (train, validation) = (standardised features, labels) in utterance order.
    srcs: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
    for f in sorted(args.data.glob("*.npz")):
        if f.stem not in SOURCE_WEIGHTS or (args.sources and f.stem not in args.sources):
            continue
        d = np.load(f)
        x, y, u = d["x"], d["y"].astype(np.int64), d["u"]
        val = u % 10 == 9
        srcs[f.stem] = {
            part: (torch.from_numpy((x[m] - mean) * scale), torch.from_numpy(y[m]))
            for part, m in (("tr", ~val), ("va", val))
        }
        print(f"  {f.stem}: {y.size} frames ({time.time() - t0:.0f} s)", flush=True)
    names = sorted(srcs)
    pw = np.array([SOURCE_WEIGHTS[n] for n in names])
    pw /= pw.sum()
    net = _temporal_net(w, b, args.gru, args.dropout)
    teachers = [_load_teacher(p, mean, scale) for p in args.teachers or ()]
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    seq, batch = 400, 8

    def validate() -> dict[str, tuple[float, float]]:
        net.eval()
        res = {}
        with torch.no_grad():
            for n in names:
                x, y = srcs[n]["va"]
                k = min(seq, y.shape[0])
                m = (y.shape[0] // k) * k
                z, t = net(x[:m].reshape(-1, k, x.shape[1]))
                acc_f = float((z.reshape(-1, 9).argmax(1) == y[:m]).float().mean())
                acc_t = float((t.reshape(-1, 9).argmax(1) == y[:m]).float().mean())
                res[n] = (round(acc_f, 3), round(acc_t, 3))
        net.train()
        return res

    tot = 0.0
    for step in range(args.steps):
        xs, ys = [], []
        for s in rng.choice(len(names), size=batch, p=pw):
            x, y = srcs[names[s]]["tr"]
            st = int(rng.integers(0, max(1, y.shape[0] - seq)))
            xs.append(x[st : st + seq])
            ys.append(y[st : st + seq])
        xb = torch.stack(xs)
        yb = torch.stack(ys).reshape(-1)
        z, t = net(xb + 0.1 * torch.randn_like(xb))
        loss = loss_fn(z.reshape(-1, 9), yb) + loss_fn(t.reshape(-1, 9), yb)
        if teachers:
            # Distillation: the teachers' mean logits (what the ensemble computes), on the
            # clean window, as soft targets at temperature T for both outputs.
            with torch.no_grad():
                outs = [tn(xb) for tn in teachers]
                tz = torch.stack([o[0] for o in outs]).mean(0)
                tt = torch.stack([o[1] for o in outs]).mean(0)
            temp, a = args.distil_temperature, args.distil_weight
            soft = sum(
                torch.nn.functional.kl_div(
                    torch.log_softmax(out.reshape(-1, 9) / temp, 1),
                    torch.log_softmax(q.reshape(-1, 9) / temp, 1),
                    log_target=True, reduction="batchmean",
                )
                for out, q in ((z, tz), (t, tt))
            )  # fmt: skip
            loss = (1 - a) * loss + a * temp * temp * soft
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tot += float(loss.detach())
        if (step + 1) % 500 == 0 or step + 1 == args.steps:
            r = validate()
            mf, mt = (float(np.mean([v[i] for v in r.values()])) for i in (0, 1))
            print(f"  step {step + 1}: loss {tot / 500:.3f}, validation acc MLP {mf:.3f} "
                  f"temporal {mt:.3f} ({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
            tot = 0.0
    print("  validation (MLP, temporal) per source:", validate())
    arrays = _mlp_arrays(mean, scale, net.lin)
    arrays["model_format"] = np.array(MODEL_FORMAT)
    params = dict(net.named_parameters())
    for key, name in _GRU_ARRAYS:  # matrices transposed, in float16; biases float32
        a = params[name].detach().numpy()
        arrays[key] = a.T.astype(np.float16) if a.ndim == 2 else a.astype(np.float32)
    return _write(args.out, arrays, t0)


if __name__ == "__main__":
    raise SystemExit(main())
