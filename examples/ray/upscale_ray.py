"""Upscale a folder with Ray Data: the same files, names and bytes as one `affsr upscale` run.

    pip install 'affsr[ray]'
    python examples/ray/upscale_ray.py photos/ -o photos_x4/ [-w affmse-x4] [--shards 8] [--concurrency 4]
    python examples/ray/upscale_ray.py photos/ -o photos_x4/ --address auto   # an existing Ray cluster

How: the input list is cut into `--shards` slices exactly as `affsr upscale --shard K/N` cuts it
(sorted inputs, balanced by pixels), and a Ray Data pipeline over the shard numbers maps each to
`batch.run(..., Options(shard=(K, N)))` inside an actor that loads the weights once. So every
decision `affsr upscale` makes — output names, the batch's own outputs never taken as inputs,
`--skip-existing` — is made by the same code; a re-run with `--skip-existing` finishes what a failed
run left. Outputs go to a folder all workers can write (a shared file system on a cluster).

Without Ray the same work is `affsr upscale photos/ -o photos_x4/ --shard K/N` on N machines.
"""

from __future__ import annotations

import argparse
import sys

SPLIT_HELP = "slices of the input list (more than --concurrency keeps every worker busy to the end)"


class ShardUpscaler:
    """One Ray actor: the upscaler, loaded once, then one shard per call."""

    def __init__(self, weights: str, inputs: list[str], shards: int, options: dict, threads: int):
        import torch

        from affsr_cli import batch, infer

        torch.set_num_threads(threads)
        self.batch, self.inputs, self.shards, self.options = batch, inputs, shards, options
        self.up = infer.Upscaler.load(weights)

    def __call__(self, batch: dict) -> dict:
        rows = {"shard": [], "written": [], "errors": []}
        for k in batch["id"]:
            errors = []
            cb = self.batch.Callbacks(error=lambda source, message: errors.append(message))
            opts = self.batch.Options(**self.options, shard=(int(k), self.shards))
            self.batch.run(self.up, list(self.inputs), opts, cb)
            rows["shard"].append(int(k))
            rows["written"].append([r["output"] for r in cb.results])
            rows["errors"].append(errors)
        return rows


def upscale_with_ray(
    inputs: list[str],
    output: str,
    weights: str,
    shards: int,
    concurrency: int,
    threads: int = 1,
    overwrite: bool = False,
    skip_existing: bool = False,
) -> tuple[list[str], list[str]]:
    """(outputs written, error lines), after every shard ran once on a Ray worker."""
    from pathlib import Path

    import ray
    from ray import cloudpickle

    if __name__ != "__main__":  # imported (a test, a notebook): workers cannot import this file, send it by value
        cloudpickle.register_pickle_by_value(sys.modules[__name__])

    options = dict(output=Path(output), overwrite=overwrite, skip_existing=skip_existing)
    ray.data.DataContext.get_current().enable_progress_bars = False
    # from_items: the shard numbers live in the driver, so no read task holds a CPU the actors wait for
    ds = ray.data.from_items([{"id": k} for k in range(shards)]).map_batches(
        ShardUpscaler,
        fn_constructor_args=(weights, list(inputs), shards, options, threads),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=threads,
    )
    written, errors = [], []
    for row in ds.iter_rows():
        written += list(row["written"])
        errors += list(row["errors"])
    return sorted(written), errors


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("inputs", nargs="+", help="images, folders or globs, as affsr upscale takes them")
    p.add_argument("-o", "--output", required=True, help="output folder (reachable by every worker)")
    p.add_argument("-w", "--weights", default="affgan-x4", help="shipped name, file or hf:// path")
    p.add_argument("--shards", type=int, default=8, help=SPLIT_HELP)
    p.add_argument("--concurrency", type=int, default=2, help="Ray actors (each loads the weights once)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (and Ray CPUs) per actor")
    p.add_argument(
        "--address", default=None, help="Ray cluster to join ('auto': the running one); default: a local Ray"
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--skip-existing", action="store_true")
    args = p.parse_args(argv)
    if args.shards < 1 or args.concurrency < 1 or args.threads < 1:
        print("error: --shards, --concurrency and --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        import ray
    except ImportError:
        print("error: Ray is not installed: pip install 'affsr[ray]'", file=sys.stderr)
        return 2
    ray.init(
        address=args.address,
        num_cpus=None if args.address else args.concurrency * args.threads,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    written, errors = upscale_with_ray(
        args.inputs,
        args.output,
        args.weights,
        args.shards,
        args.concurrency,
        args.threads,
        args.overwrite,
        args.skip_existing,
    )
    for e in errors:
        print(f"affsr: error: {e}", file=sys.stderr)
    print(
        f"{len(written)} file(s) written to {args.output} by {args.concurrency} Ray actor(s) over {args.shards} shards"
        + (f"; {len(errors)} input(s) failed" if errors else "")
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
