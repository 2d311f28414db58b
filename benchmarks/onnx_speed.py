"""onnxruntime (CPU) beside torch on the same generator f, same input, same threads, one run.

    python benchmarks/onnx_speed.py [--generator small] [-w WEIGHTS] [--size 256] [--threads 2] [--repeats 3]

f only (no Π: `affsr project` adds it to either). Prints seconds per call (best of --repeats after a
warm-up), output megapixels per second, the ratio, and the largest difference of the two outputs.
torch runs as `affsr upscale` runs it: float32, channels_last, inference mode.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from timing import best  # benchmarks/timing.py

from affsr_cli import checkpoint, export, methods
from affsr_cli.projection import OperatorSpec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", default="small", help="preset with random weights (ignored with -w)")
    ap.add_argument("-w", "--weights", help="a generator.safetensors or shipped name instead")
    ap.add_argument("--size", type=int, default=256, help="LR side (output: 4× that)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = (
        checkpoint.load_generator(checkpoint.resolve_weights(args.weights))
        if args.weights
        else methods.build_generator(args.generator, OperatorSpec(4, family="bicubic"), "aff")
    ).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = export.export(model, Path(tmp) / "f.onnx", verify=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    net = model.net.to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    out = {}

    def run_torch():
        with torch.inference_mode():
            out["torch"] = net(xc).numpy()

    def run_ort():
        out["ort"] = session.run(None, {"x": x.numpy()})[0]

    t_torch, t_ort = best(run_torch, args.repeats, warmup=True), best(run_ort, args.repeats, warmup=True)
    mp = (4 * args.size) ** 2 / 1e6
    name = args.weights or args.generator
    print(
        f"f = {name} ({sum(p.numel() for p in model.net.parameters()):,} parameters), "
        f"{args.size}² → {4 * args.size}², {args.threads} threads, best of {args.repeats}"
    )
    print(f"{'runtime':<14}{'s/call':>9}{'MP/s':>8}")
    for label, t in (("torch", t_torch), ("onnxruntime", t_ort)):
        print(f"{label:<14}{t:>9.3f}{mp / t:>8.2f}")
    print(
        f"onnxruntime / torch speed: {t_torch / t_ort:.2f}×; max |difference| {np.abs(out['ort'] - out['torch']).max():.1e}"
    )


if __name__ == "__main__":
    main()
