"""The ``visionsuite`` command: LightningCLI subcommands plus a few tools.

    visionsuite fit      --config configs/classification/lenet5_fashion_mnist.yaml [--trainer.max_epochs 3]
    visionsuite validate|test|predict --config … [--ckpt_path best|last|PATH]
    visionsuite summary vgg16 --input 3x224x224
    visionsuite backbones [PATTERN]

Errors caused by the user's input are printed as one line (exit status 2).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from visionsuite.errors import VisionSuiteError


def _lightning_cli(args: list[str] | None) -> Any:
    """Build and run the LightningCLI (imported lazily: ``import lightning`` costs seconds)."""
    import torch
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.cli import LightningCLI

    from visionsuite.tasks import BaseTask

    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")

    class VisionSuiteCLI(LightningCLI):
        """Adds ``--test_after_fit``: after ``fit``, test the best-validation checkpoint."""

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument(
                "--test_after_fit",
                type=bool,
                default=True,
                help="After fit, run test on the checkpoint with the best validation score.",
            )

        def after_fit(self) -> None:
            if not self.config[self.subcommand].get("test_after_fit", False):
                return
            if self.trainer.interrupted or not _has_test_data(self.datamodule):
                return
            ckpt = "best" if getattr(self.trainer.checkpoint_callback, "best_model_path", "") else None
            results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
            if self.trainer.is_global_zero:
                _print_result(results, self.model, ckpt)

    return VisionSuiteCLI(
        model_class=BaseTask,
        datamodule_class=LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},  # errors reach main(), which prints one line
        args=args,
    )


def _print_result(results: list[dict[str, float]], model: Any, ckpt: str | None) -> None:
    """One closing line with the headline test metric in its own unit, for humans and ``make train``.

    The task names the metric (``headline_key()``: by default the test twin of ``monitor``) and
    its format (``headline_format``: ``"{:.2%}"`` for an accuracy, ``"{:.2f} nats"`` for a loss).
    """
    if not results:
        return
    key = model.headline_key()
    if key is None or key not in results[0]:
        return
    which = "best-validation checkpoint" if ckpt == "best" else "final weights"
    value = model.headline_format.format(results[0][key])
    print(f"Test {key.split('/', 1)[-1]} ({which}): {value}")


def condense_parser_error(message: str) -> str:
    """One line from jsonargparse's nested report: ``<key> (<Class>): <what is wrong>``."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    head = re.match(r'Parser key "([^"]+)":', lines[0]) if lines else None
    problem = next((i for i, line in enumerate(lines) if line.startswith("- Problem with given class_path")), None)
    if head is None or problem is None:
        return " ".join(lines)
    cls = re.search(r"class_path '([^']+)'", lines[problem])
    detail: list[str] = []
    for line in lines[problem + 1 :]:
        if line.startswith(("- Expected a <class 'NoneType'>", "Given value")):
            break
        detail.append(line.lstrip("- "))
    where = f"{head.group(1)} ({cls.group(1).rsplit('.', 1)[-1]})" if cls else head.group(1)
    return f"{where}: {' '.join(detail)}"


def _user_error_in_chain(err: BaseException) -> VisionSuiteError | None:
    """The user-facing error behind ``err`` (jsonargparse and Lightning wrap the ones we raise)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, VisionSuiteError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _has_test_data(datamodule: Any) -> bool:
    from lightning.pytorch.utilities.model_helpers import is_overridden

    return datamodule is not None and is_overridden("test_dataloader", datamodule)


def _backbones(args: list[str]) -> int:
    from visionsuite.backbones import list_backbones

    print("\n".join(list_backbones(args[0] if args else "*")))
    print("\nExternal: tv/<torchvision model name>, timm/<timm model name>")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``visionsuite`` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        if args and args[0] == "summary":
            from visionsuite.summary import main as summary_main

            return summary_main(args[1:])
        if args and args[0] == "backbones":
            return _backbones(args[1:])
        _lightning_cli(None if argv is None else args)
    except argparse.ArgumentError as err:
        print(f"visionsuite: error: {condense_parser_error(str(err))} (see --help)", file=sys.stderr)
        return 2
    except Exception as err:
        user_error = _user_error_in_chain(err)
        if user_error is None:
            raise
        print(f"visionsuite: error: {user_error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
