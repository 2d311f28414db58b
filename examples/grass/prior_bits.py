"""Bits per dimension of the affll run's PixelCNN prior on held-out grass: 64×64 patches of
data/grass/test (stride 32), beside the same count for training patches and for the methods'
outputs ŷ on the held-out strip (paper App. E: its AffLL outputs scored better than the data).

    python examples/grass/prior_bits.py RUNS_DIR   # reads RUNS_DIR/affll/state.safetensors

Convention: NLL = −(1/d) log₂ p(y), p the *continuous* density on [0, 1]^d (lower is better;
negative where the density exceeds 1). The paper reports a log-likelihood (higher is better,
−4.10 bits/dim for its MCGSM prior): its sign is the opposite, and on the 0..255 scale of
8-bit pixels a density is 256× lower per dimension, so LL_255 = −NLL − 8. The prior is read
from the training state (safetensors, nothing unpickled): every ladder snapshot, the last one
being what the generator was trained under.
"""

import math
import sys
from pathlib import Path

import torch

from affsr_cli import checkpoint, nets
from affsr_cli.images import read_image

PATCH, STRIDE = 64, 32


def patches(img: torch.Tensor, size: int = PATCH, stride: int = STRIDE) -> torch.Tensor:
    """(N, 1, size, size) patches of a (H, W) image, raster order."""
    h, w = img.shape
    return torch.stack(
        [
            img[r : r + size, c : c + size]
            for r in range(0, h - size + 1, stride)
            for c in range(0, w - size + 1, stride)
        ]
    )[:, None]


def load_prior(run: Path) -> tuple[list[nets.PixelCNN], dict]:
    """The PixelCNN of every ladder rung of an ll run (the trained weights if there is no ladder)."""
    state, cfg = checkpoint.load_state(run / "state.safetensors")
    objective = state["modules"]["objective"]
    trained = {k[len("critic.") :]: v for k, v in objective.items() if k.startswith("critic.")}
    ladder = (objective.get("_extra_state") or {}).get("ladder") or [trained]

    def build(weights):
        m = nets.PixelCNN(
            channels=cfg["channels"],
            width=cfg["prior_width"] or 64,
            layers=cfg["prior_layers"] or 4,
            mixture=cfg["mixture"],
        )
        m.load_state_dict(weights)
        return m.eval()

    return [build(w) for w in ladder], cfg


@torch.no_grad()
def nll_bits(prior: nets.PixelCNN, y: torch.Tensor, batch: int = 16) -> float:
    """Mean −log₂ p(y) per dimension over the patches y (N, C, H, W)."""
    total = sum(-prior.log_prob_pixels(y[i : i + batch]).sum().item() for i in range(0, len(y), batch))
    return total / y.numel() / math.log(2)


def main(runs: str):
    runs = Path(runs)
    ladder, cfg = load_prior(runs / "affll")
    test, train = (read_image(f"data/grass/{part}/grass.png").pixels[0] for part in ("test", "train"))  # (H, W) gray
    y_test, y_train = patches(test), patches(train, stride=PATCH)
    print(
        f"prior: PixelCNN of {runs / 'affll'} ({len(ladder)} ladder rungs, {cfg['prior_steps']} prior steps); "
        f"held-out: {len(y_test)} patches {PATCH}×{PATCH} of data/grass/test (stride {STRIDE}); "
        f"train: {len(y_train)} of data/grass/train (stride {PATCH})"
    )
    print(
        "NLL in bits/dim of the continuous density on [0, 1] (lower is better); paper's sign: LL = −NLL; "
        "8-bit units: LL_255 = −NLL − 8"
    )
    for k, prior in enumerate(ladder):
        nll = nll_bits(prior, y_test)
        print(f"  rung {k}: held-out NLL {nll:+.3f}  (LL {-nll:+.3f}, LL_255 {-nll - 8:+.3f})")
    prior = ladder[-1]
    nll_test, nll_train = nll_bits(prior, y_test), nll_bits(prior, y_train)
    print(
        f"last rung (the generator's prior): held-out NLL {nll_test:+.3f} bits/dim, train NLL {nll_train:+.3f}; "
        f"paper's sign LL {-nll_test:+.3f} bits/dim (8-bit units {-nll_test - 8:+.3f}; paper: −4.10)"
    )
    # outputs ŷ of each method on the held-out strip, scored by the same prior
    y = test[None, None]
    for name in ("affmse", "affgan", "affdg", "affll"):
        path = runs / name / "generator.safetensors"
        if path.is_file():
            model = checkpoint.load_generator(path).eval()
            with torch.no_grad():
                yhat = model(model.A(y)).clamp(0, 1)[0, 0]
            print(f"  ŷ of {name}: NLL {nll_bits(prior, patches(yhat)):+.3f} bits/dim")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/grass")
