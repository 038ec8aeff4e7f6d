"""Train a Gumbel-Softmax VAE on MNIST and register it as a new model-store version.

    python -m training --epochs 40 --data-dir ../shared/data
    python -m training --resume latest --epochs 10          # continue a stored version (optimizer included)
    torchrun --standalone --nproc_per_node=4 -m training --epochs 40 --batch-size 400   # data-parallel, 100/rank
    python -m training --help

Under torchrun only rank 0 writes the version; see docs/training-at-scale.md for multi-node launches.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields
from typing import get_args

from model_store.errors import StoreError
from model_store.model import VAEConfig
from model_store.registry import ROOT_ENV_VAR, ModelStore

from .config import Amp, Binarization, LrSchedule, TrainConfig
from .data import DataNotFound
from .distributed import Ranks, process_group
from .train import TrainingDiverged, train

_CHOICES = {"binarization": get_args(Binarization), "lr_schedule": get_args(LrSchedule), "amp": get_args(Amp)}
_HELP = {
    "model_name": "name of the model in the store",
    "epochs": "epochs to train (with --resume: further epochs)",
    "batch_size": "examples per optimizer step over all ranks (torchrun: batch_size / WORLD_SIZE per rank)",
    "lr": "Adam learning rate (peak)",
    "lr_schedule": "constant, or cosine decay to lr*lr_min_ratio over this run",
    "lr_min_ratio": "final lr as a fraction of lr for the cosine schedule",
    "tau0": "initial Gumbel-Softmax temperature",
    "tau_min": "temperature floor",
    "anneal_rate": "r in tau = max(tau_min, tau0*exp(-r*step))",
    "anneal_every": "update the temperature every this many global steps",
    "hard": "straight-through Gumbel-Softmax (one-hot forward, relaxed gradient)",
    "binarization": "dynamic: resample Bernoulli pixels per batch; none: grayscale targets",
    "seed": "random seed (shuffling, binarization, Gumbel noise)",
    "device": "auto (CUDA when available), cpu, cuda or cuda:N (torchrun: cuda:LOCAL_RANK)",
    "amp": "bf16: bfloat16 autocast of the forward pass (CUDA only)",
    "compile": "torch.compile the encoder and decoder (GPU users; the first steps compile)",
    "data_dir": "MNIST root for torchvision (holds MNIST/raw)",
    "download": "download MNIST through torchvision when it is missing",
    "train_limit": "use only the first N training images (0 = all)",
    "test_limit": "evaluate on the first N test images (0 = all)",
    "eval_k": "importance samples for the final IW-NLL bound",
    "eval_k_epoch": "importance samples for a per-epoch IW-NLL (0 = skip)",
    "grid_every": "save image grids every N epochs (and at the last)",
    "tensorboard": "write TensorBoard events into the version's record/tensorboard (if tensorboard is installed)",
    "log_every": "TensorBoard per-step scalars every N steps",
    "save_optimizer": "store the Adam state with the version, for exact --resume",
    "resume": "version number or alias to continue from",
    "description": "free text stored with the version",
    "tags": "key=value tags stored with the version (repeatable)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--store-root", default=None,
                        help=f"model store root (default: ${ROOT_ENV_VAR} or the repository's store)")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = _HELP[f.name]
        if isinstance(default, bool):
            parser.add_argument(flag, default=default, action=argparse.BooleanOptionalAction, help=help_text)
        elif isinstance(default, list):
            parser.add_argument(flag, dest=f.name, action="append", default=[], metavar="KEY=VALUE",
                                help=help_text)
        else:
            choices = _CHOICES.get(f.name)
            parser.add_argument(flag, type=type(default), default=default, choices=choices, help=help_text)
    parser.add_argument("--latent-dim", type=int, default=VAEConfig.latent_dim, help="N categorical variables")
    parser.add_argument("--categorical-dim", type=int, default=VAEConfig.categorical_dim, help="K classes each")
    parser.add_argument("--hidden-dims", type=int, nargs="+", default=list(VAEConfig.hidden_dims),
                        help="encoder hidden widths (decoder mirrors them)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = Ranks.from_env()
    prefix = f"[rank {env.rank}] " if env.is_distributed else ""
    logging.basicConfig(level=logging.WARNING if args.quiet or not env.is_main else logging.INFO,
                        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s")
    config = TrainConfig(**{name: getattr(args, name) for name in TrainConfig.field_names()})
    model_config = VAEConfig(hidden_dims=tuple(args.hidden_dims), latent_dim=args.latent_dim,
                             categorical_dim=args.categorical_dim)
    try:
        with process_group(config.device) as ranks:
            meta = train(config, ModelStore(args.store_root), model_config,
                         progress=not args.quiet and ranks.is_main, ranks=ranks)
    except (ValueError, DataNotFound, StoreError, TrainingDiverged) as exc:
        print(f"error: {prefix}{exc}", file=sys.stderr)
        return 2
    if env.is_main:
        print(json.dumps({"name": meta["name"], "version": meta["version"], "metrics": meta["metrics"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
