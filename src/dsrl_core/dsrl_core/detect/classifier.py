"""
Learned success detector: a small CNN trained on camera frames a user labelled success/failure.

Label-collection format (``LabelStore``): a directory with ``success/`` and ``failure/``
subfolders of PNG frames (RGB as saved by OpenCV), plus ``labels.csv`` (file, success, episode,
note) appended on every save. The reward node writes it when ``label_dir`` is set and a human
labels an episode; ``make-sim`` writes one from the simulated camera with ground truth.

CLI::

    python -m dsrl_core.detect.classifier make-sim --out labels/ --n 600
    python -m dsrl_core.detect.classifier train --data labels/ --out runs/clf --epochs 15

Training prints a tqdm bar and the held-out accuracy (a stratified ``--val-fraction`` split); the
checkpoint is ``model.safetensors`` + ``config.json`` (never pickle). ``ClassifierDetector`` scores
a frame with the predicted probability and gates the decision with ``k_consecutive``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import time
from typing import Optional

import cv2
import numpy as np
import torch
from torch import nn

from dsrl_core.detect.common import ConsecutiveGate, Detection


class SuccessCNN(nn.Module):
    """Four strided 3x3 conv layers (16-32-32-64) + global average pool + linear logit."""

    def __init__(self, width: int = 16) -> None:
        """Create with ``width`` channels in the first layer."""
        super().__init__()
        w = width
        layers, cin = [], 3
        for cout in (w, 2 * w, 2 * w, 4 * w):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits [B] for images [B, 3, H, W] in [0, 1]."""
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def to_tensor(rgb: np.ndarray, size: int) -> torch.Tensor:
    """Resize an RGB uint8 frame to size x size and return [3, size, size] float in [0, 1]."""
    img = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)


class LabelStore:
    """Write/read the label-collection directory (see the module docstring)."""

    def __init__(self, root: str) -> None:
        """Use (and create) ``root``."""
        self.root = pathlib.Path(root)
        for sub in ('success', 'failure'):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def save(self, rgb: np.ndarray, success: bool, episode: int = 0, note: str = '') -> str:
        """Save one labelled RGB frame; return its path relative to the root."""
        sub = 'success' if success else 'failure'
        name = f'{sub}/ep{episode:05d}_{time.time_ns()}.png'
        if not cv2.imwrite(str(self.root / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f'cannot write {self.root / name}')
        with open(self.root / 'labels.csv', 'a', newline='') as fh:
            csv.writer(fh).writerow([name, int(success), episode, note])
        return name

    def load(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Return (RGB frames, labels 0/1) of every PNG under success/ and failure/."""
        images, labels = [], []
        for sub, lab in (('failure', 0), ('success', 1)):
            for path in sorted((self.root / sub).glob('*.png')):
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise OSError(f'cannot read {path}')
                images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                labels.append(lab)
        return images, np.asarray(labels, dtype=np.int64)


def train(images: list[np.ndarray], labels: np.ndarray, out: Optional[str] = None,
          size: int = 64, epochs: int = 15, batch: int = 32, lr: float = 3e-3,
          val_fraction: float = 0.2, seed: int = 0, progress: bool = True) -> dict:
    """Train a SuccessCNN; return stats with the held-out accuracy; save it when ``out`` is set."""
    from tqdm import tqdm
    labels = np.asarray(labels, dtype=np.int64)
    if len(images) != len(labels) or len(images) < 10:
        raise ValueError(f'need >= 10 labelled images, got {len(images)} ({len(labels)} labels)')
    if len(set(labels.tolist())) < 2:
        raise ValueError('need both success and failure examples')
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    val_idx = []
    for lab in (0, 1):  # stratified split
        idx = rng.permutation(np.flatnonzero(labels == lab))
        val_idx += idx[:max(1, int(round(val_fraction * idx.size)))].tolist()
    is_val = np.zeros(len(labels), dtype=bool)
    is_val[val_idx] = True
    x = torch.stack([to_tensor(im, size) for im in images])
    y = torch.from_numpy(labels).float()
    xt, yt, xv, yv = x[~is_val], y[~is_val], x[is_val], y[is_val]
    model = SuccessCNN()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    steps = epochs * int(np.ceil(len(xt) / batch))
    bar = tqdm(total=steps, desc='train classifier', disable=not progress)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            j = perm[i:i + batch]
            xb = xt[j]
            if torch.rand(()) < 0.5:  # brightness jitter
                xb = (xb * (0.8 + 0.4 * torch.rand(len(xb), 1, 1, 1))).clamp(0, 1)
            loss = loss_fn(model(xb), yt[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update(1)
            bar.set_postfix(loss=f'{loss.item():.3f}')
    bar.close()
    model.eval()
    with torch.no_grad():
        pred = (torch.sigmoid(model(xv)) >= 0.5).float()
    stats = {'train': int(len(xt)), 'val': int(len(xv)),
             'val_accuracy': float((pred == yv).float().mean()),
             'val_false_positive_rate': float(((pred == 1) & (yv == 0)).sum() /
                                              max(1, int((yv == 0).sum())))}
    if out:
        save(model, out, size, stats)
    return {**stats, 'model': model, 'size': size}


def save(model: SuccessCNN, out: str, size: int, stats: dict) -> None:
    """Write ``model.safetensors`` + ``config.json`` to ``out``."""
    from safetensors.torch import save_file
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(out, 'model.safetensors'))
    with open(os.path.join(out, 'config.json'), 'w') as fh:
        json.dump({'arch': 'SuccessCNN', 'width': 16, 'input_size': size, **stats}, fh, indent=2)


def load(path: str) -> tuple[SuccessCNN, int]:
    """Load a checkpoint directory; return (model in eval mode, input size)."""
    from safetensors.torch import load_file
    cfg_path = os.path.join(path, 'config.json')
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f'no classifier checkpoint at {path} (config.json missing)')
    with open(cfg_path) as fh:
        cfg = json.load(fh)
    model = SuccessCNN(cfg.get('width', 16))
    model.load_state_dict(load_file(os.path.join(path, 'model.safetensors')))
    return model.eval(), int(cfg['input_size'])


class ClassifierDetector:
    """CNN probability as the score; success when >= threshold for k consecutive frames."""

    method = 'classifier'

    def __init__(self, path: str, threshold: float = 0.5, k_consecutive: int = 3) -> None:
        """Load the checkpoint at ``path``."""
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f'threshold must be in [0, 1], got {threshold}')
        self.model, self.size = load(path)
        self.threshold = float(threshold)
        self.gate = ConsecutiveGate(k_consecutive)

    def score_frame(self, rgb: np.ndarray) -> float:
        """Return the success probability of one RGB frame."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'expected an RGB uint8 image [H, W, 3], got {rgb.shape} {rgb.dtype}')
        with torch.no_grad():
            return float(torch.sigmoid(self.model(to_tensor(rgb, self.size)[None]))[0])

    def update(self, rgb: np.ndarray) -> Detection:
        """Score one frame and update the gate."""
        p = self.score_frame(rgb)
        ok = p >= self.threshold
        decision = self.gate.update(ok)
        return Detection(p, ok, decision, self.method, True, self.gate.count)

    def reset(self) -> None:
        """Clear the consecutive-frame count."""
        self.gate.reset()


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the classifier CLI (make-sim, train)."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    sub = ap.add_subparsers(dest='cmd', required=True)
    ms = sub.add_parser('make-sim', help='write a labelled set from the simulated camera')
    ms.add_argument('--out', required=True)
    ms.add_argument('--n', type=int, default=600)
    ms.add_argument('--size', type=int, default=96)
    ms.add_argument('--seed', type=int, default=0)
    tr = sub.add_parser('train', help='train on a label directory, report held-out accuracy')
    tr.add_argument('--data', required=True)
    tr.add_argument('--out', required=True)
    tr.add_argument('--epochs', type=int, default=15)
    tr.add_argument('--size', type=int, default=64)
    tr.add_argument('--val-fraction', type=float, default=0.2)
    tr.add_argument('--seed', type=int, default=0)
    args = ap.parse_args(argv)
    if args.cmd == 'make-sim':
        from tqdm import tqdm

        from dsrl_core.detect.simcam import labelled_frames
        store = LabelStore(args.out)
        for rgb, ok, _ in tqdm(labelled_frames(args.n, args.size, args.seed), total=args.n,
                               desc='render'):
            store.save(rgb, ok, note='sim ground truth')
        print(f'wrote {args.n} labelled frames to {args.out}')
        return 0
    images, labels = LabelStore(args.data).load()
    print(f'{len(images)} frames: {int(labels.sum())} success, {int((labels == 0).sum())} failure')
    stats = train(images, labels, args.out, size=args.size, epochs=args.epochs,
                  val_fraction=args.val_fraction, seed=args.seed)
    print(f"held-out accuracy {stats['val_accuracy']:.3f} on {stats['val']} frames "
          f"(false-positive rate {stats['val_false_positive_rate']:.3f}); saved {args.out}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
