"""Ensembles of trained checkpoints: mean of probabilities, weighted mean, or majority vote.

``visionsuite ensemble --config A.yaml --ckpt_path a.ckpt --config B.yaml --ckpt_path b.ckpt …``
(pairs in order; architectures may differ) scores every member and the ensemble on the test set
with the task's own metrics (classification: accuracy; segmentation: the mean of the softmax
maps, scored by global / class-average accuracy and mIoU) and writes a Markdown table
(``--output``, default ``ensemble.md``) and ``<output>.json``. With ``--predict_dir`` it predicts
those images instead, written as the members' ``predict`` writes them. Each member sees the
images through its own data module's normalisation; all members must be the same task with the
same class list, and see the same test targets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from visionsuite.core.atomic import write_text_atomic
from visionsuite.core.tool_parser import ToolParser
from visionsuite.errors import VisionSuiteError
from visionsuite.runs.folders import tool_output_dir

METHODS = ("mean", "weighted", "vote")


class EnsembleError(VisionSuiteError):
    """Members that cannot be combined (another task, other classes, other test images)."""


def check_weights(weights: Sequence[float] | None, members: int) -> None:
    """``--weights`` of ``weighted``: one finite, non-negative weight per member, not all zero."""
    if weights is None or len(weights) != members or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise EnsembleError(f"--weights: weighted needs {members} finite, non-negative weights (not all 0), got {weights}")


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
        check_weights(weights, probs.shape[0])
        w = torch.as_tensor(weights, dtype=probs.dtype).view(-1, *[1] * (probs.dim() - 1))
        return (probs * w).sum(0) / w.sum()
    votes = torch.nn.functional.one_hot(probs.argmax(2), probs.shape[2]).movedim(-1, 2).to(probs.dtype).mean(0)
    return votes + probs.mean(0) / (probs.shape[0] + 1)


def member_probabilities(trained: object, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Softmax probabilities of one member on its whole test set, and the targets (labels or masks)."""
    from visionsuite.data.augment import to_float
    from visionsuite.tools.export import Deployable

    trained.datamodule.prepare_data()
    trained.datamodule.setup("test")
    test = trained.datamodule.test_set
    model = Deployable(trained.task, trained.normalisation).eval()
    probs, targets = [], []
    with torch.no_grad():
        for start in range(0, len(test), batch_size):
            batch = test[list(range(start, min(start + batch_size, len(test))))]
            probs.append(torch.softmax(model(to_float(batch["image"])), dim=1))
            targets.append(batch[trained.task.target_key].long())
    return torch.cat(probs), torch.cat(targets)


def check_compatible(members: Sequence[object]) -> None:
    """The same task class (one with class probabilities) and class list for every member; else
    an error naming both."""
    first = members[0]
    for m in members:
        if m.task.target_key is None:
            raise EnsembleError(
                f"{m.ckpt} is a {type(m.task).__name__}: ensembles combine class probabilities "
                "(ClassificationTask, SegmentationTask)"
            )
    for other in members[1:]:
        a, b = type(first.task).__name__, type(other.task).__name__
        if a != b:
            raise EnsembleError(f"{first.ckpt} is a {a} but {other.ckpt} is a {b}: only one task can be ensembled")
        if first.class_names != other.class_names:
            raise EnsembleError(
                f"{first.ckpt} has classes {first.class_names} but {other.ckpt} has {other.class_names}"
            )


def member_name(m: object) -> str:
    """``<experiment>/<run> (<backbone>) <checkpoint>`` for a run's own config, else ``<config> (…) <ckpt>``."""
    hp = m.task.hparams
    source, run = m.config.name, Path(m.config).resolve().parent  # resolved: `latest` names its run
    if source == "config.yaml" and run.parent.name:  # a run folder: name it by experiment and run
        source = f"{run.parent.name}/{run.name}"
    return f"{source} ({hp.get('backbone') or hp.get('model') or '?'}) {m.ckpt.name}"


def evaluate(members: Sequence[object], method: str, weights: Sequence[float] | None,
             batch_size: int = 32) -> dict[str, dict[str, float]]:  # fmt: skip
    """Every member's and the ensemble's scalar test metrics (the task's own: accuracy, or global
    accuracy / class-average accuracy / mIoU), ``{name: {metric: value}}``, the ensemble last.

    Streams the test set in batches, so softmax maps of a segmentation test set never all sit
    in memory at once; every member must see the same targets.
    """
    from visionsuite.data.augment import to_float
    from visionsuite.tools.export import Deployable

    check_compatible(members)
    key = members[0].task.target_key
    sets = []
    for m in members:
        m.datamodule.prepare_data()
        m.datamodule.setup("test")
        sets.append(m.datamodule.test_set)
    models = [Deployable(m.task, m.normalisation).eval() for m in members]
    scores = [members[0].task.configure_metrics() for _ in range(len(members) + 1)]
    n = len(sets[0])
    with torch.no_grad():
        for start in range(0, n, batch_size):
            index = list(range(start, min(start + batch_size, n)))
            probs, target = [], None
            for m, model, test in zip(members, models, sets, strict=True):
                batch = test[index] if len(test) == n else None
                if batch is None or (target is not None and not torch.equal(batch[key], target)):
                    raise EnsembleError(f"{m.config} tests on other images than {members[0].config} ({key}s differ)")
                target = batch[key]
                probs.append(torch.softmax(model(to_float(batch["image"])), dim=1))
            stacked = torch.stack(probs)
            for metric, p in zip(scores, [*stacked, combine(stacked, method, weights)], strict=True):
                metric.update(p, target.long())
    names = [member_name(m) for m in members] + [f"ensemble ({method})"]
    return {name: _scalars(metric.compute()) for name, metric in zip(names, scores, strict=True)}


def _scalars(values: dict[str, Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v.numel() == 1}


def headline(task: object) -> str:
    """The metric the ensemble is judged on: the one the task selects checkpoints on."""
    return (task.monitor or "acc").split("/", 1)[-1]


def table(rows: dict[str, dict[str, float]], main_metric: str, n_test: int | None = None) -> str:
    names = list(rows)
    metrics = list(rows[names[0]])
    lines = [f"| model | {' | '.join(metrics)} |", "|---|" + "---:|" * len(metrics)]
    lines += [f"| {n} | {' | '.join(f'{rows[n][k]:.2%}' for k in metrics)} |" for n in names]
    best = max(rows[n][main_metric] for n in names[:-1])
    gain = rows[names[-1]][main_metric] - best
    where = f" on {n_test} test images" if n_test else ""
    lines.append(f"\nEnsemble − best member ({main_metric}): {gain * 100:+.2f} points{where}")
    return "\n".join(lines)


class MemberEnsemble(L.LightningModule):
    """The members as one model for ``trainer.predict``: the same outputs as a member task's
    ``predict_step`` (``pred``/``prob`` for classification, ``logits`` = log of the combined
    probabilities for segmentation), so the tasks' own prediction writers write them.

    Batches arrive normalised with the first member's data statistics; each member gets the
    [0, 1] pixels back and applies its own normalisation (:class:`~visionsuite.tools.export.Deployable`).
    """

    def __init__(self, members: Sequence[object], method: str = "mean", weights: Sequence[float] | None = None) -> None:
        from visionsuite.tools.export import Deployable

        super().__init__()
        check_compatible(members)
        self.first = members[0].task
        self._class_names = members[0].class_names  # from the member's own data module
        self.models = torch.nn.ModuleList([Deployable(m.task, m.normalisation) for m in members])
        self.method, self.weights = method, weights
        mean, std = members[0].normalisation or ((0.0,), (1.0,))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Combined class probabilities of normalised images ``x``."""
        pixels = x * self.std + self.mean
        probs = torch.stack([torch.softmax(model(pixels), dim=1) for model in self.models])
        return combine(probs, self.method, self.weights)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        probs = self(batch["image"])
        if self.first.target_key == "mask":
            return {"paths": list(batch["path"]), "logits": probs.clamp_min(1e-12).log().float().cpu()}
        prob, pred = probs.max(1)
        return {"paths": list(batch["path"]), "pred": pred.cpu(), "prob": prob.cpu()}

    def palette(self) -> list[list[int]]:
        return self.first.palette()

    def class_names(self) -> list[str]:
        """The members' class names (checked equal when the ensemble was built)."""
        return list(self._class_names)

    def configure_callbacks(self) -> list[L.Callback]:
        from visionsuite.outputs import PredictionCSVWriter, SegmentationMaskWriter

        return [SegmentationMaskWriter() if self.first.target_key == "mask" else PredictionCSVWriter()]


def predict(members: Sequence[object], method: str, weights: Sequence[float] | None, predict_dir: str, output: Path) -> Path:
    """Write the ensemble's predictions for the images of ``predict_dir`` under ``output`` (the
    members' own format: ``predictions.csv``, or palette masks + overlays in ``predictions/``)."""
    model = MemberEnsemble(members, method, weights).eval()
    dm = members[0].datamodule
    dm.predict_dir = Path(predict_dir).expanduser()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, default_root_dir=str(output),
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.predict(model, datamodule=dm, return_predictions=False)
    return output


def main(args: list[str]) -> int:
    from visionsuite.runs.trained import load_trained

    parser = ToolParser(prog="visionsuite ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], help="a member run: its folder, its name under logs/,"
                        " or latest (repeat); its own config.yaml and --ckpt checkpoint")  # fmt: skip
    parser.add_argument("--ckpt", default=None, help="with --run: best (default), last or a file, for every member run")
    parser.add_argument("--config", action="append", default=[], help="a member's config (repeat, paired with --ckpt_path)")
    parser.add_argument("--ckpt_path", action="append", default=[], help="its checkpoint (repeat, in order)")
    parser.add_argument("--method", choices=METHODS, default="mean")
    parser.add_argument("--weights", type=float, nargs="+", default=None, help="with --method weighted")
    parser.add_argument("--data_dir", default=None, help="override every member's data.init_args.data_dir")
    parser.add_argument("--output", type=Path, default=None,
                        help="the table (and <output>.json; default: ensemble.md in a new <stamp>-ensemble folder"
                        " beside the first member's run)")
    parser.add_argument("--predict_dir", default=None,
                        help="predict these images with the ensemble instead of scoring the test set")
    parser.add_argument("--predict_output", type=Path, default=None,
                        help="with --predict_dir: folder of the predictions (the members' own format; default: a new"
                        " <stamp>-ensemble folder beside the first member's run)")
    opts = parser.parse_args(args)
    if len(opts.config) != len(opts.ckpt_path):
        raise EnsembleError(f"each --config needs its --ckpt_path: got {len(opts.config)} config(s) and {len(opts.ckpt_path)} checkpoint(s)")
    if len(opts.run) + len(opts.config) < 2:
        raise EnsembleError("give ≥ 2 members: --run RUN (repeat) and/or --config C --ckpt_path K pairs")
    overrides = {"data_dir": opts.data_dir} if opts.data_dir else None
    if opts.method == "weighted":
        check_weights(opts.weights, len(opts.run) + len(opts.config))
    elif opts.weights is not None:
        raise EnsembleError(f"--weights are used by --method weighted only; --method {opts.method} would ignore them")
    if opts.predict_dir and opts.output is not None and opts.predict_output is None:
        raise EnsembleError("--output names the table of a test-set evaluation; with --predict_dir give --predict_output FOLDER")
    members = [load_trained(None, opts.ckpt, run=r, data_overrides=overrides) for r in opts.run]
    members += [load_trained(c, k, data_overrides=overrides) for c, k in zip(opts.config, opts.ckpt_path, strict=True)]
    same = {}
    for member in members:
        if member.ckpt.resolve() in same:
            raise EnsembleError(f"{member.ckpt} is given twice (as {same[member.ckpt.resolve()]} and {member.config}); an ensemble of one model says nothing")
        same[member.ckpt.resolve()] = member.config
    if opts.predict_dir:
        predict(members, opts.method, opts.weights, opts.predict_dir,
                opts.predict_output or tool_output_dir(members[0].ckpt, "ensemble"))  # fmt: skip
        return 0
    rows = evaluate(members, opts.method, opts.weights)
    text = table(rows, headline(members[0].task), len(members[0].datamodule.test_set))
    print(text)
    output = opts.output or tool_output_dir(members[0].ckpt, "ensemble") / "ensemble.md"
    write_text_atomic(output, text + "\n")
    write_text_atomic(output.with_name(output.name + ".json"), json.dumps(rows, indent=2))
    print(f"Ensemble table written to {output} (and {output.name}.json)")
    return 0
