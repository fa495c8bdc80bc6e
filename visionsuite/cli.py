"""The ``visionsuite`` command: LightningCLI subcommands plus a few tools.

    visionsuite fit      --config configs/classification/lenet5_fashion_mnist.yaml [--trainer.max_epochs 3]
    visionsuite validate|test|predict --config … [--ckpt_path best|last|PATH]
    visionsuite summary vgg16 --input 3x224x224
    visionsuite backbones [PATTERN]

Errors caused by the user's input are printed as one line (exit status 2).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from visionsuite.errors import VisionSuiteError


def _lightning_cli(args: list[str]) -> Any:
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
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)

    return VisionSuiteCLI(
        model_class=BaseTask,
        datamodule_class=LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


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
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        if args and args[0] == "summary":
            from visionsuite.summary import main as summary_main

            return summary_main(args[1:])
        if args and args[0] == "backbones":
            return _backbones(args[1:])
        _lightning_cli(args)
    except VisionSuiteError as err:
        print(f"visionsuite: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
