"""Progress after the network (issue: the saved-file fit and the Pillow match showed none): the
contract reports each stage, counts only forward and ends each at its total."""

import numpy as np
import torch
from PIL import Image

from affsr_cli import batch as U
from affsr_cli import checkpoint, methods
from affsr_cli.infer import make_consistent
from affsr_cli.projection import OperatorSpec
from helpers import VAL


def lr(box=(100, 60, 140, 92)) -> torch.Tensor:
    im = Image.open(VAL / "coffee.png").convert("RGB").crop(box)
    return torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255


def test_fit_and_pillow_match_report_progress():
    x = lr()
    spec = OperatorSpec(4, family="bicubic")
    A, pinv = spec.build()
    torch.manual_seed(0)
    f = torch.nn.functional.interpolate(x[None], scale_factor=4, mode="nearest")[0] * 1.3 - 0.15  # leaves [0, 1]
    calls = []
    out = make_consistent(f, x, spec, A, pinv, 8, on_stage=lambda *a: calls.append(a))
    fit = [(d, t) for name, d, t in calls if name == "fit"]
    assert fit and out.box_iterations > 0
    assert all(b[0] >= a[0] for a, b in zip(fit, fit[1:])) and fit[-1][0] == fit[-1][1]  # forward, then done
    assert all(t == fit[0][1] and 0 <= d <= t for d, t in fit)
    names = [name for name, _, _ in calls]
    assert set(names) <= {"fit", "Pillow match"} and names[0] == "fit"
    if out.pillow_passes:
        assert "Pillow match" in names and names.index("Pillow match") > max(
            i for i, n in enumerate(names) if n == "fit"
        )


def test_upscale_engine_reports_every_stage(tmp_path):
    Image.fromarray((lr() * 255).round().byte().permute(1, 2, 0).numpy()).save(tmp_path / "in.png")
    torch.manual_seed(0)
    checkpoint.save_generator(
        tmp_path / "g.safetensors", methods.build_generator("small", OperatorSpec(4, family="bicubic"), "aff").eval()
    )
    from affsr_cli import infer

    up = infer.Upscaler.load(str(tmp_path / "g.safetensors"))
    seen = []
    cb = U.Callbacks(tile=lambda d, t: seen.append(("tiles", d, t)), stage=lambda *a: seen.append(a))
    assert U.run(up, [str(tmp_path / "in.png")], U.Options(output=tmp_path / "out.png"), cb) == 0
    names = [s[0] for s in seen]
    assert names[0] == "tiles" and names[-1] == "checking" and "fit" in names
