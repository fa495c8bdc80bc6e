"""Which trained model a tool works on: the same ``--run`` / ``--config`` + ``--ckpt_path``
options, resolution and refusal rules for ``export``, ``explain`` and ``ensemble`` as for
``test`` (:func:`visionsuite.runs.trained.load_trained`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_source_arguments(parser: argparse.ArgumentParser, *, repeat: bool = False) -> None:
    """``--run`` (a run folder, its name under logs/, or latest), ``--config``, ``--ckpt``/``--ckpt_path``."""
    action = "append" if repeat else "store"
    parser.add_argument("--run", action=action, default=None,
                        help="a trained run: its folder, its name under logs/, or latest (its own config.yaml and"
                        " checkpoint)" + (" (repeat, one per member)" if repeat else ""))  # fmt: skip
    parser.add_argument("--config", action=action, default=None,
                        help="a config file" + (" (repeat, paired in order with --ckpt_path)" if repeat else
                                                "; with --run, replaces the run's config.yaml"))  # fmt: skip
    parser.add_argument("--ckpt_path", "--ckpt", action=action, default=None, dest="ckpt_path",
                        help="best, last or a file (with --run: of that run, default best; with --config: of"
                        " its latest run)")  # fmt: skip
    parser.add_argument("--data_dir", default=None, help="override data.init_args.data_dir")


def load_source(opts: argparse.Namespace) -> Any:
    """The :class:`~visionsuite.runs.trained.Trained` the options name."""
    from visionsuite.runs.trained import load_trained

    overrides = {"data_dir": opts.data_dir} if opts.data_dir else None
    return load_trained(opts.config, opts.ckpt_path, run=opts.run, data_overrides=overrides)
