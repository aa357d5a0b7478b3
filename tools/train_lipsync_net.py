"""Train the shipped lip-sync classifier (src/avatarcast/speech/models/lipsync_en.npz) with torch.

    # 1. data (project venv): tools/lipsync_data.py --out /work/lipsync-train
    # 2. training (a separate venv with torch, never a project dependency):
    python3 -m venv /work/train-venv && /work/train-venv/bin/pip install torch==2.13.0 numpy==1.26.4
    /work/train-venv/bin/python tools/train_lipsync_net.py --data /work/lipsync-train

Reads every `<source>.npz` of --data (features, shape labels, utterance ids), gives each
source the weight of --weights (default: equal total weight per source family, see
SOURCE_WEIGHTS), holds out every 10th utterance of each source for a validation figure, and
trains an MLP (standardisation → ReLU layers → 9 shapes) with Adam, dropout, input noise
and label smoothing. Deterministic: fixed seeds, one thread, fixed data order.

The result is written in the format `lipsync_model.LipSyncModel.from_npz` reads (float16
weight matrices); the run-time inference is numpy only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "avatarcast" / "speech" / "models" / "lipsync_en.npz"
SEED = 20261203
CONTEXT = (*range(-16, 0, 2), 0, 1, 2, 3, *range(5, 20, 2))  # = lipsync_model.CONTEXT
FEATURE_VERSION = 2  # = lipsync_model.FEATURE_VERSION

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
    ap.add_argument("--seed", type=int, default=SEED, help="other seeds measure run-to-run spread")
    args = ap.parse_args(argv)
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
    arrays: dict[str, np.ndarray] = {
        "mean": mean,
        "scale": scale,
        "context": np.array(CONTEXT),
        "feature_version": np.array(FEATURE_VERSION),
    }
    for i, m in enumerate(lin):
        arrays[f"w{i + 1}"] = m.weight.detach().numpy().T.astype(np.float16)
        arrays[f"b{i + 1}"] = m.bias.detach().numpy().astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in {time.time() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
