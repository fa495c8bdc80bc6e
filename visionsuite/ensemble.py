"""Ensembles of trained checkpoints: mean of probabilities, weighted mean, or majority vote.

``visionsuite ensemble --config A.yaml --ckpt_path a.ckpt --config B.yaml --ckpt_path b.ckpt …``
(pairs in order; architectures may differ) scores every member and the ensemble on the test set
and writes a Markdown table (``--output``, default ``ensemble.md``) and ``<output>.json``. Each
member sees the test images through its own data module's normalisation; all members must be
the same task with the same class list, and see the same test labels.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from visionsuite.errors import VisionSuiteError

METHODS = ("mean", "weighted", "vote")


class EnsembleError(VisionSuiteError):
    """Members that cannot be combined (another task, other classes, other test images)."""


def combine(probs: Tensor, method: str = "mean", weights: Sequence[float] | None = None) -> Tensor:
    """Combine member probabilities ``[M, N, C, …]`` (classification, or softmax maps) into ``[N, C, …]``.

    ``mean``: the average; ``weighted``: the ``weights``-weighted average (normalised to sum 1);
    ``vote``: one vote per member for its argmax class, as vote fractions, ties broken by the
    mean probability (added at a scale below one vote).
    """
    if method not in METHODS:
        raise EnsembleError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "mean":
        return probs.mean(0)
    if method == "weighted":
        if weights is None or len(weights) != probs.shape[0] or min(weights) < 0 or sum(weights) <= 0:
            raise EnsembleError(f"weighted needs {probs.shape[0]} non-negative weights, got {weights}")
        w = torch.as_tensor(weights, dtype=probs.dtype).view(-1, *[1] * (probs.dim() - 1))
        return (probs * w).sum(0) / w.sum()
    votes = torch.nn.functional.one_hot(probs.argmax(2), probs.shape[2]).movedim(-1, 2).to(probs.dtype).mean(0)
    return votes + probs.mean(0) / (probs.shape[0] + 1)


def member_probabilities(trained: object, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Softmax probabilities of one member on its whole test set, and the labels."""
    from visionsuite.data.augment import to_float
    from visionsuite.export import Deployable

    trained.datamodule.prepare_data()
    trained.datamodule.setup("test")
    test = trained.datamodule.test_set
    model = Deployable(trained.task, trained.normalisation).eval()
    probs, labels = [], []
    with torch.no_grad():
        for start in range(0, len(test), batch_size):
            batch = test[list(range(start, min(start + batch_size, len(test))))]
            probs.append(torch.softmax(model(to_float(batch["image"])), dim=1))
            labels.append(batch["label"])
    return torch.cat(probs), torch.cat(labels)


def check_compatible(members: Sequence[object]) -> None:
    """The same task class and class list for every member; else an error naming both."""
    first = members[0]
    for other in members[1:]:
        a, b = type(first.task).__name__, type(other.task).__name__
        if a != b:
            raise EnsembleError(f"{first.ckpt} is a {a} but {other.ckpt} is a {b}: only one task can be ensembled")
        if first.class_names != other.class_names:
            raise EnsembleError(
                f"{first.ckpt} has classes {first.class_names} but {other.ckpt} has {other.class_names}"
            )


def evaluate(members: Sequence[object], method: str, weights: Sequence[float] | None) -> list[tuple[str, float]]:
    """Test accuracy of every member, then of the ensemble: ``[(name, accuracy), …]``."""
    check_compatible(members)
    all_probs, labels = [], None
    for m in members:
        probs, y = member_probabilities(m)
        if labels is not None and not torch.equal(y, labels):
            raise EnsembleError(f"{m.config} tests on other images than {members[0].config} (labels differ)")
        labels = y
        all_probs.append(probs)
    stacked = torch.stack(all_probs)
    rows = [(f"{m.config.name} ({m.task.hparams.get('backbone', '?')}) {m.ckpt.name}", float((p.argmax(1) == labels).float().mean()))
            for m, p in zip(members, all_probs, strict=True)]  # fmt: skip
    ensemble = combine(stacked, method, weights)
    rows.append((f"ensemble ({method})", float((ensemble.argmax(1) == labels).float().mean())))
    return rows


def table(rows: Sequence[tuple[str, float]], n_test: int | None = None) -> str:
    best = max(acc for _, acc in rows[:-1])
    lines = ["| model | test accuracy |", "|---|---:|", *[f"| {n} | {a:.2%} |" for n, a in rows]]
    lines.append(f"\nEnsemble − best member: {rows[-1][1] - best:+.2%}" + (f" on {n_test} test images" if n_test else ""))
    return "\n".join(lines)


def main(args: list[str]) -> int:
    from visionsuite.trained import load_trained

    parser = argparse.ArgumentParser(prog="visionsuite ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", required=True, help="a member's config (repeat, in order)")
    parser.add_argument("--ckpt_path", action="append", required=True, help="its checkpoint (repeat, in order)")
    parser.add_argument("--method", choices=METHODS, default="mean")
    parser.add_argument("--weights", type=float, nargs="+", default=None, help="with --method weighted")
    parser.add_argument("--data_dir", default=None, help="override every member's data.init_args.data_dir")
    parser.add_argument("--output", type=Path, default=Path("ensemble.md"))
    opts = parser.parse_args(args)
    if len(opts.config) != len(opts.ckpt_path) or len(opts.config) < 2:
        raise EnsembleError(f"give ≥ 2 --config/--ckpt_path pairs, got {len(opts.config)} config(s) and {len(opts.ckpt_path)} checkpoint(s)")
    overrides = {"data_dir": opts.data_dir} if opts.data_dir else None
    members = [load_trained(c, k, data_overrides=overrides) for c, k in zip(opts.config, opts.ckpt_path, strict=True)]
    rows = evaluate(members, opts.method, opts.weights)
    text = table(rows, len(members[0].datamodule.test_set))
    print(text)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(text + "\n")
    opts.output.with_name(opts.output.name + ".json").write_text(json.dumps(dict(rows), indent=2))
    return 0
