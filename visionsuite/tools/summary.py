"""Per-layer size, memory and compute of a backbone: ``visionsuite summary <backbone>``.

The numbers follow the course's accounting so they can be checked against its tables
(AlexNet's CONV1 on 227x227x3: 55x55x96, 34,848 weights + 96 biases; VGG-16: 138M parameters,
~15M activations per image):

* **activations** of a layer are the elements of the tensor it newly allocates, per image;
  in-place operations (``ReLU(inplace=True)``) and views (``Flatten``) allocate none. The input
  image counts too. Memory is 4 bytes (fp32) per number; MB means 10^6 bytes.
* **FLOPs** are 2 x multiply-accumulates for convolutions and linear layers; pooling counts one
  operation per window element, normalisation two per output (scale and shift), activations
  one. Backward costs about twice the forward, so forward+backward is ~3x.
* **training memory** = 2 x parameters (weights + their gradients) + 2 x activations (values
  kept for back-propagation + their gradients); optimizer state comes on top (momentum: +1x
  parameters, Adam: +2x). For VGG-16 this gives >1.1 GB per image, as the course says.

A ``torch.profiler`` cross-check of the activation memory is :func:`measure_forward_memory`.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from visionsuite.core.tool_parser import ToolParser

BYTES_PER_NUMBER = 4  # fp32
MB = 1e6

_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
    nn.Hardsigmoid, nn.Mish, nn.PReLU, nn.Softmax, nn.LogSoftmax, nn.Hardtanh, nn.SELU,
)  # fmt: skip
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
_LABELS = (
    (nn.modules.conv._ConvNd, "CONV"),
    (nn.Linear, "FC"),
    ((nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd), "MAXPOOL"),
    ((nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd), "AVGPOOL"),
    ((nn.LocalResponseNorm, *_NORMS), "NORM"),
)


@dataclass(frozen=True)
class LayerRow:
    """One call of a leaf module; sizes are per image."""

    name: str
    kind: str
    label: str  # the course's naming: CONV1, MAXPOOL1, NORM1, FC1 … ("" for other layers)
    output_shape: tuple[int, ...]
    weights: int
    biases: int
    activations: int
    flops: int

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def activation_mb(self) -> float:
        return self.activations * BYTES_PER_NUMBER / MB

    @property
    def param_mb(self) -> float:
        return self.params * BYTES_PER_NUMBER / MB


@dataclass(frozen=True)
class Summary:
    """Rows and totals of :func:`summarize`; memory in MB (10^6 bytes), for ``batch_size`` images."""

    input_size: tuple[int, ...]
    batch_size: int
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    title: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def activations(self) -> int:
        """Activations per image (input included)."""
        return sum(r.activations for r in self.rows)

    @property
    def flops(self) -> int:
        """Forward FLOPs per image."""
        return sum(r.flops for r in self.rows)

    @property
    def param_mb(self) -> float:
        return self.total_params * BYTES_PER_NUMBER / MB

    @property
    def activation_mb(self) -> float:
        """Activation memory of the whole batch."""
        return self.batch_size * self.activations * BYTES_PER_NUMBER / MB

    @property
    def forward_mb(self) -> float:
        """Inference: parameters + the batch's activations."""
        return self.param_mb + self.activation_mb

    @property
    def training_mb(self) -> float:
        """Forward+backward: 2 x parameters (weights, gradients) + 2 x activations (values, gradients)."""
        return 2 * self.param_mb + 2 * self.activation_mb

    @property
    def training_flops(self) -> int:
        """Forward+backward FLOPs of the batch (backward ≈ 2 x forward)."""
        return 3 * self.flops * self.batch_size

    def row(self, label_or_name: str) -> LayerRow:
        """The row with this course label (``CONV1``) or module name."""
        for r in self.rows:
            if label_or_name in (r.label, r.name):
                return r
        raise KeyError(label_or_name)

    def table(self) -> str:
        """The per-layer table and the totals, as printed by ``visionsuite summary``."""
        head = ("Layer", "Label", "Type", "Output (CxHxW)", "Params (w + b)", "Activations", "Act MB", "Param MB")
        head += ("MFLOPs",)
        body = [
            (
                r.name,
                r.label,
                r.kind,
                "x".join(map(str, r.output_shape)),
                f"{r.weights:,} + {r.biases:,}" if r.biases else f"{r.weights:,}",
                f"{r.activations:,}",
                f"{r.activation_mb:.2f}",
                f"{r.param_mb:.2f}",
                f"{r.flops / 1e6:,.1f}",
            )
            for r in self.rows
        ]
        widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]

        def line(cells: Sequence[object]) -> str:  # text columns left-aligned, numbers right-aligned
            cols = enumerate(zip(cells, widths))
            return "  ".join(str(c).ljust(w) if i < 4 else str(c).rjust(w) for i, (c, w) in cols)

        rule = "-" * len(line(head))
        c = "x".join(map(str, self.input_size))
        b = self.batch_size
        per = "per image" if b == 1 else f"for a batch of {b}"
        footer = [
            f"Totals for {self.title + ' on ' if self.title else ''}{c} input, batch {b}:",
            f"  parameters        {self.total_params:>15,}  ({self.trainable_params:,} trainable)"
            f"  = {self.param_mb:,.1f} MB",
            f"  activations       {self.activations:>15,}  per image"
            f"  = {self.activations * BYTES_PER_NUMBER / MB:,.1f} MB per image",
            f"  forward FLOPs     {self.flops * b / 1e9:>15,.2f}  GFLOPs {per};"
            f" forward+backward ≈ 3x = {self.training_flops / 1e9:,.2f} GFLOPs",
            f"  memory, forward   {self.forward_mb:>15,.1f}  MB = params + {b} x activations",
            f"  memory, training  {self.training_mb:>15,.1f}  MB = 2 x params (weights + gradients)"
            f" + 2 x {b} x activations (values + gradients)",
            "Conventions: fp32 (4 bytes), MB = 10^6 bytes; activations = newly allocated outputs (in-place",
            "ops and views add none; the input counts); FLOPs = 2 x multiply-accumulates for conv/linear,",
            "pooling 1 per window element, norms 2 and activations 1 per output, functional adds 1.",
            "Optimizer state is extra: +1x params (SGD momentum), +2x (Adam).",
            *self.notes,
        ]
        return "\n".join([line(head), rule, *map(line, body), rule, *footer])


def summarize(model: nn.Module, input_size: Sequence[int], *, batch_size: int = 1, title: str = "") -> Summary:
    """Run one forward pass on zeros of shape ``(batch_size, *input_size)`` and account every layer.

    Leaf modules give one row per call. A block whose output is a tensor none of its layers
    produced (a residual sum, an Inception concatenation) gets a "functional" row for it. The
    model runs in eval mode without gradients (its mode is restored); errors it raises for an
    unsuitable input (too small, wrong channels) propagate unchanged.
    """
    input_size = tuple(int(s) for s in input_size)
    recorder = _Recorder(model, batch_size)
    x = torch.zeros(batch_size, *input_size)
    recorder.known(x)
    handles = [m.register_forward_hook(recorder.hook) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rows = [LayerRow("input", "Input", "INPUT", input_size, 0, 0, math.prod(input_size), 0), *recorder.rows]
    total = sum(p.numel() for p in model.parameters())
    counted = sum(r.params for r in rows)
    if counted < total:  # parameters held by non-leaf modules (ViT's class token, …)
        rows.append(LayerRow("(other parameters)", "", "", (), total - counted, 0, 0, 0))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(input_size, batch_size, rows, total, trainable, title)


class _Recorder:
    """Forward hook state: one row per leaf call, plus blocks whose output is newly computed."""

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        self.batch_size = batch_size
        self.rows: list[LayerRow] = []
        self.names = {m: n for n, m in model.named_modules()}
        self.counters: dict[str, int] = {}
        self.seen: set[nn.Module] = set()
        self.storages: set[int] = set()
        self.keep: list[Tensor] = []  # outputs held until the end, so their memory is not reused

    def known(self, t: Tensor) -> None:
        self.storages.add(_storage(t))
        self.keep.append(t)

    def hook(self, module: nn.Module, inputs: tuple, output: object) -> None:
        outs, ins = _tensors(output), _tensors(inputs)
        leaf = next(module.children(), None) is None
        inputs = {_storage(i) for i in ins}
        fresh = [t for t in outs if _storage(t) not in self.storages and _storage(t) not in inputs]
        for t in outs:
            self.known(t)
        if isinstance(module, nn.Identity) or (not leaf and not fresh):
            return  # a no-op, or a block whose output one of its layers already accounts for
        first = module not in self.seen
        self.seen.add(module)
        own = list(module.named_parameters(recurse=False)) if first and leaf else []
        shape = tuple(outs[0].shape[1:]) if outs else ()
        new = sum(t.numel() for t in fresh) // self.batch_size
        if leaf:
            flops = _flops(module, ins[0] if ins else None, outs[0] if outs else None)
            kind, label = type(module).__name__, _label(module, self.counters)
        else:  # an add or concatenation in the block's forward: ~1 operation per output element
            flops, kind, label = sum(t.numel() for t in fresh), f"{type(module).__name__} (functional)", ""
        self.rows.append(
            LayerRow(
                self.names.get(module, "?"),
                kind,
                label,
                shape,
                sum(p.numel() for n, p in own if n != "bias"),
                sum(p.numel() for n, p in own if n == "bias"),
                new,
                flops // self.batch_size,
            )
        )


def _storage(t: Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _tensors(obj: object) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _label(module: nn.Module, counters: dict[str, int]) -> str:
    for kinds, label in _LABELS:
        if isinstance(module, kinds):
            counters[label] = counters.get(label, 0) + 1
            return f"{label}{counters[label]}"
    return ""


def _flops(module: nn.Module, x: Tensor | None, y: Tensor | None) -> int:
    """Forward FLOPs of one call (whole batch); see the module docstring for the conventions."""
    if x is None or y is None:
        return 0
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 2 * x.numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.modules.conv._ConvNd):
        return 2 * y.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return 2 * y.numel() * module.in_features
    if isinstance(module, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd):
        k = module.kernel_size
        return y.numel() * (math.prod(k) if isinstance(k, tuple) else k ** (y.dim() - 2))
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd):
        return x.numel()
    if isinstance(module, nn.LocalResponseNorm):
        return (2 * module.size + 3) * y.numel()  # squares and sums over the window, scale, power, divide
    if isinstance(module, _NORMS):
        return 2 * y.numel()
    if isinstance(module, (*_ACTIVATIONS, nn.Upsample)):
        return y.numel()
    return 0


# -- measuring ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasuredMemory:
    """CPU memory allocated by one training-mode forward pass, from ``torch.profiler`` (MB)."""

    retained_mb: float  # still allocated when the forward returns: what backward will need
    peak_mb: float  # the high-water mark, including temporaries (im2col buffers, …)


def measure_forward_memory(model: nn.Module, input_size: Sequence[int], *, batch_size: int = 1) -> MeasuredMemory:
    """Measure the memory a forward pass with gradients allocates (the input excluded).

    The reference for the summary's activation memory: what autograd keeps for backward is
    every layer's output (plus small extras such as max-pooling indices).
    """
    from torch.profiler import ProfilerActivity, profile

    x = torch.zeros(batch_size, *input_size)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = model(x)
    del out
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    level = peak = 0
    for event in events:
        level += event.nbytes()
        peak = max(peak, level)
    return MeasuredMemory(level / MB, peak / MB)


# -- command line -----------------------------------------------------------------------------
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``summary`` arguments (on ``parser`` when given, e.g. a sub-command's)."""
    parser = parser or ToolParser(prog="visionsuite summary", description=__doc__.splitlines()[0])
    parser.add_argument("backbone", help="a registered backbone name, or tv/<name>, timm/<name>")
    parser.add_argument("--input", type=_parse_input, default=None, metavar="CxHxW",
                        help="input size, e.g. 3x224x224 (default: the backbone's own)")  # fmt: skip
    parser.add_argument("--batch_size", type=_positive_int, default=1,
                        help="images per batch (default 1; --batch-size, the old spelling, is still read as it)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", type=_parse_option,
                        help="builder option, e.g. num_classes=10 (repeatable)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print the summary table; exit code 2 (with one line on stderr) for a bad name or input."""
    args = build_parser().parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Execute parsed ``summary`` arguments (shared with the ``visionsuite`` console script)."""
    from visionsuite.backbones import UnknownBackboneError, create_backbone

    try:
        model = create_backbone(args.backbone, **dict(args.option))
    except UnknownBackboneError as err:
        return _fail(err)
    except (TypeError, ValueError) as err:  # an option of the wrong kind: name the options given
        given = ", ".join(f"{k}={v!r}" for k, v in args.option)
        return _fail(f"{args.backbone} with {given}: {_first_line(err)}" if given else err)
    size = _complete_size(args.input, getattr(model, "default_input_size", None))
    try:
        result = summarize(model, size, batch_size=args.batch_size, title=args.backbone)
    except ValueError as err:  # the backbone's own message (input too small, …)
        return _fail(err)
    except RuntimeError as err:  # a layer's shape error deep inside: say which input caused it
        return _fail(f"{args.backbone} cannot run on a {'x'.join(map(str, size))} input: {_first_line(err)}")
    print(result.table())
    groups = model.stage_groups() if callable(getattr(model, "stage_groups", None)) else {}
    if groups:  # what frozen_stages counts, unfreeze_at names and stage_lr_decay steps through
        print(f"Fine-tuning stages (frozen_stages, unfreeze_at), input side first: {', '.join(groups)}")
    return 0


def _fail(err: object) -> int:
    print(f"visionsuite: error: {_first_line(err)}", file=sys.stderr)
    return 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a count >= 1, got {value}")
    return value


def _first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _parse_input(text: str) -> tuple[int, ...]:
    """``3x224x224`` → (3, 224, 224); ``224x224`` or ``224`` leave the channels to the backbone."""
    try:
        parts = tuple(int(p) for p in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x224x224, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) not in (2, 3) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x224x224, got {text!r}")
    return parts


def _complete_size(given: tuple[int, ...] | None, default: Sequence[int] | None) -> tuple[int, ...]:
    default = tuple(default or (3, 224, 224))
    if given is None:
        return default
    return given if len(given) == 3 else (default[0], *given)


def _parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string such as activation=gelu


if __name__ == "__main__":
    raise SystemExit(main())
