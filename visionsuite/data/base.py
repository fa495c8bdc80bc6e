"""The shared DataModule: cached uint8 splits, hold-out validation, on-device augmentation.

Subclasses only say where their data comes from and how to decode it (``_decode``), plus
their constants (classes, mean/std, size). Everything else is common:

* ``prepare_data`` (rank 0) decodes each missing split once into ``<cache_dir>/<split>.pt``;
* ``setup`` memory-maps the caches, holds out validation (and, where there is no official
  test set, test) images from ``train`` with a seeded generator, and applies ``*_subset``;
* loaders yield whole uint8 batches as dicts of named parts (:mod:`visionsuite.data.batch`):
  ``{"image": [B, C, H, W], "label": [B]}`` here, plus ``mask`` / ``bbox_xyxy`` /
  ``bbox_label`` for data that has them; the predict loader yields ``{"image", "path"}``: the
  files of ``predict_dir`` or, without one, the test split (named by source file, or
  ``test/<index>`` for datasets stored as arrays);
* ``on_after_batch_transfer`` turns a batch into float on its device, augments it when the
  trainer is training (random crop with padding, horizontal flip, zoom: drawn once per image
  and applied to every part), then normalises the image. ``flip_mode: alternating`` (airbench)
  mirrors each training image in every other epoch instead of by a coin each time: a fixed
  random half in even epochs, the other half in odd ones, so every two epochs show each
  image both ways exactly once.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar, Literal, get_args

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader

from visionsuite.core.console import timed_line
from visionsuite.core.options import check_arguments
from visionsuite.errors import DataWarning

from . import augment as aug
from .augment import alternating_flips
from .batch import BBOX_XYXY, IMAGE, INDEX, MASK, Batch
from .cache import DecodedSplit, concat_splits, is_valid_cache, load_split, save_split
from .datasets import RaggedBoxes, TensorImageDataset, batch_loader
from .errors import InvalidDatasetError
from .images import decode_images, list_image_files, skipped_message
from .splits import first_n, holdout_split, resolve_size

#: data options that decide what a network sees (its input's normalisation, size and channels):
#: ``test``/``predict --run`` may not change them (``visionsuite.cli.app``); every other data
#: option (batch size, workers, subsets, splits, ``predict_dir``, augmentation) may.
INPUT_OPTIONS = ("normalize", "mean", "std", "image_size", "channels", "resize_mode")


class TensorClassificationDataModule(L.LightningDataModule):
    """Base class of the classification DataModules (see the module docstring).

    Subclasses set the class attributes below and implement :meth:`_decode`.
    """

    #: folder under ``data_dir`` holding this dataset's files and cache.
    dataset_name: ClassVar[str] = ""
    #: class names in label order (image folders override :attr:`class_names` instead).
    CLASSES: ClassVar[tuple[str, ...]] = ()
    #: per-channel mean and std of the training images, in [0, 1] units.
    MEAN: ClassVar[tuple[float, ...]] = ()
    STD: ClassVar[tuple[float, ...]] = ()
    #: (H, W) and channel count of the images the loaders yield.
    IMAGE_SIZE: ClassVar[tuple[int, int]] = (0, 0)
    IN_CHANS: ClassVar[int] = 0
    #: whether the cache can hold another ``image_size``/``channels`` than the above (files decoded
    #: by PIL can be resized and converted; arrays such as IDX files or CIFAR pickles cannot: their
    #: batches are resized on the device instead, see :meth:`transform_batch`).
    RESIZABLE: ClassVar[bool] = False
    #: mask value of void pixels, ignored by losses and metrics; augmentation pads masks with it.
    IGNORE_INDEX: ClassVar[int] = 255

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        val_size: int | float = 5_000,
        test_size: int | float = 0,
        seed: int = 42,
        augment: bool = True,
        crop_padding: int = 0,
        crop_pad_mode: aug.PadMode = "zeros",
        hflip: bool = False,
        flip_mode: Literal["random", "alternating"] = "random",
        normalize: bool = True,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        train_subset: int | None = None,
        val_subset: int | None = None,
        test_subset: int | None = None,
        predict_dir: str | None = None,
        drop_last: bool = False,
        train_on_val: bool = False,
        image_size: int | tuple[int, int] | None = None,
        channels: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_arguments(self, self.hparams)
        self.data_dir = Path(data_dir).expanduser()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.val_size, self.test_size, self.seed = val_size, test_size, seed
        self.augment, self.crop_padding, self.hflip = augment, crop_padding, hflip
        if crop_pad_mode not in get_args(aug.PadMode):
            raise InvalidDatasetError(f"crop_pad_mode must be {' or '.join(get_args(aug.PadMode))}, got {crop_pad_mode!r}")
        self.crop_pad_mode = crop_pad_mode
        if flip_mode not in ("random", "alternating"):
            raise InvalidDatasetError(f"flip_mode must be random or alternating, got {flip_mode!r}")
        self.flip_mode = flip_mode
        self.normalize = normalize
        self.train_subset, self.val_subset, self.test_subset = train_subset, val_subset, test_subset
        self.predict_dir = Path(predict_dir).expanduser() if predict_dir else None
        self.drop_last = drop_last
        #: train on train + the stored val split (the usual final recipe, e.g. CamVid's 367 + 101);
        #: validation still runs on val, whose metrics are then no longer held out.
        self.train_on_val = train_on_val
        if not self.RESIZABLE and channels not in (None, self.IN_CHANS):
            raise InvalidDatasetError(
                f"{type(self).__name__} stores images with {self.IN_CHANS} channel(s); channels cannot change that"
            )
        size = self.IMAGE_SIZE if image_size is None else image_size
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.in_chans: int = self.IN_CHANS if channels is None else channels
        if self.in_chans not in (1, 3):
            raise InvalidDatasetError(f"channels must be 1 or 3, got {self.in_chans}")
        self.mean: tuple[float, ...] = tuple(mean) if mean is not None else self.MEAN
        self.std: tuple[float, ...] = tuple(std) if std is not None else self.STD
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise InvalidDatasetError(f"mean/std need {self.in_chans} value(s), got {self.mean} / {self.std}")
        self.ignore_index: int = self.IGNORE_INDEX
        #: zoom range of training augmentation (data modules with masks/boxes expose it).
        self.scale_range: tuple[float, float] | None = None
        #: source files that could not be decoded (image folders), filled by ``setup``.
        self.skipped_files: list[str] = []
        self.train_set: TensorImageDataset | None = None
        self.val_set: TensorImageDataset | None = None
        self.test_set: TensorImageDataset | None = None
        self.predict_set: TensorImageDataset | None = None
        #: the splits as stored in the cache (images, labels, classes, source files), after ``setup``.
        self.decoded: dict[str, DecodedSplit] | None = None

    # -- what subclasses provide ---------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names in label order."""
        return list(self.CLASSES)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def dataset_dir(self) -> Path:
        """``data_dir/<dataset_name>``: raw files, extracted archives, cache."""
        return self.data_dir / self.dataset_name

    @property
    def cache_dir(self) -> Path:
        return self.dataset_dir / "cache"

    def cache_splits(self) -> tuple[str, ...]:
        """The splits stored on disk; ``val`` (and ``test``) missing here are held out of ``train``."""
        return ("train", "test")

    def _decode(self, splits: list[str]) -> dict[str, DecodedSplit]:
        """Fetch the raw data if needed and decode the named splits."""
        raise NotImplementedError

    # -- preparation -----------------------------------------------------------------------------
    def cache_path(self, split: str) -> Path:
        return self.cache_dir / f"{split}.pt"

    def prepare_data(self) -> None:
        """Fetch and decode once (rank 0); skipped when only predicting on ``predict_dir``."""
        trainer = self.trainer
        if trainer is not None and trainer.predicting and self.predict_dir is not None:
            return
        self._build_caches()

    def _build_caches(self) -> None:
        missing = [s for s in self.cache_splits() if not is_valid_cache(self.cache_path(s))]
        if missing:
            with timed_line(f"{self.dataset_name}: decoded into {self.cache_dir}") as counts:  # one line, tty or not
                for name, split in self._decode(missing).items():
                    save_split(split, self.cache_path(name))
                    counts.append(f"{name}: {len(split)} images")

    def setup(self, stage: str | None = None) -> None:
        """Load the caches and build the train/val/test (or predict) datasets."""
        if stage == "predict" and self.predict_dir is not None:
            if self.predict_set is None:
                self.predict_set = self._predict_folder_set()
            return
        if self.decoded is None:
            self._build_caches()  # no-op after prepare_data; makes setup() alone work too
            self.decoded = {s: load_split(self.cache_path(s)) for s in self.cache_splits()}
            self.skipped_files = [f for d in self.decoded.values() for f in d.skipped]
            if self.skipped_files:
                warnings.warn(skipped_message(self.skipped_files, self._source_description()), stacklevel=2, category=DataWarning)
            self._build_sets()
        if stage == "fit" and not self._task_announces_summary():
            rank_zero_info(self.augmentation_summary())
        if stage == "predict" and self.predict_set is None:
            self.predict_set = self._predict_test_set()

    def _task_announces_summary(self) -> bool:
        """Whether the model being fitted prints :meth:`augmentation_summary` itself: a visionsuite
        task does, after it has aligned the normalisation with its pretrained weights, so the line
        shows the values in force rather than ones about to be replaced."""
        module = getattr(getattr(self, "trainer", None), "lightning_module", None)
        return bool(getattr(module, "announces_data_summary", False))

    def _source_description(self) -> str:
        return str(self.dataset_dir)

    def _build_sets(self) -> None:
        decoded = self.decoded
        assert decoded is not None
        train = decoded["train"]
        if self.train_on_val:
            if "val" not in decoded:
                raise InvalidDatasetError(f"train_on_val needs a stored val split; {type(self).__name__} has none")
            train = concat_splits(train, decoded["val"])
        held = [name for name in ("val", "test") if name not in decoded]
        sizes = {"val": self.val_size, "test": self.test_size}
        counts = [resolve_size(sizes[name], len(train), f"{name}_size") for name in held]
        parts = dict(zip([*held, "train"], holdout_split(len(train), counts, self.seed)))
        subsets = {"train": self.train_subset, "val": self.val_subset, "test": self.test_subset}
        sets = {}
        for name in ("train", "val", "test"):
            split = train if name == "train" else decoded.get(name, train)
            indices = parts[name] if name in parts else torch.arange(len(split))
            sets[name] = self._dataset_of(split, first_n(indices, subsets[name]))
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]
        self.train_set.with_index = self.alternating_flips

    @staticmethod
    def _dataset_of(split: DecodedSplit, indices: Tensor) -> TensorImageDataset:
        """The dataset over every part ``split`` has (labels, masks, boxes)."""
        boxes = None
        if split.boxes is not None:
            assert split.box_labels is not None and split.box_offsets is not None
            boxes = RaggedBoxes(split.boxes, split.box_labels, split.box_offsets)
        return TensorImageDataset(split.images, split.labels, indices, masks=split.masks, boxes=boxes)

    def _predict_test_set(self) -> TensorImageDataset:
        """Without ``predict_dir``: the test split, named by source file (or ``<split>/<index>``)."""
        assert self.decoded is not None and self.test_set is not None
        which = "test" if "test" in self.decoded else "train"
        split = self.decoded[which]
        names = split.files or [f"{which}/{i}" for i in range(len(split))]
        return TensorImageDataset(split.images, None, self.test_set.indices, paths=names)

    def _predict_files(self) -> tuple[Path, list[Path]]:
        """``predict_dir`` and its image files; a missing or empty folder is a one-line error."""
        folder = self.predict_dir
        assert folder is not None
        if not folder.is_dir():
            raise InvalidDatasetError(f"predict_dir {str(folder)!r} does not exist (or is not a folder)")
        files = list_image_files(folder)
        if not files:
            raise InvalidDatasetError(f"predict_dir {str(folder)!r} holds no image files")
        return folder, files

    def _predict_folder_set(self) -> TensorImageDataset:
        folder, files = self._predict_files()
        images, failed = decode_images(files, self.in_chans, self.image_size, desc="decoding predict_dir")
        bad = set(failed)
        if bad:
            names = [files[i].relative_to(folder).as_posix() for i in failed]
            warnings.warn(skipped_message(names, f"predict_dir {folder}"), stacklevel=3, category=DataWarning)
        if len(bad) == len(files):
            raise InvalidDatasetError(f"predict_dir {str(folder)!r}: none of its {len(files)} image files is readable")
        paths = [str(f) for i, f in enumerate(files) if i not in bad]
        return TensorImageDataset(images, paths=paths)

    # -- loaders -------------------------------------------------------------------------------
    def _dataset(self, attr: str, stage: str) -> TensorImageDataset:
        if getattr(self, attr) is None:  # lets the loaders work without an explicit setup()
            self.setup(stage)
        return getattr(self, attr)

    def _loader(self, dataset: TensorImageDataset, train: bool = False) -> DataLoader:
        return batch_loader(
            dataset,
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=self.drop_last and train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            position=self._train_position if train else None,
        )

    def _train_position(self) -> tuple[int, int]:
        """The epoch a training pass belongs to, and how many of its batches a resumed run has
        already trained on (Lightning restores that count from the checkpoint)."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        loop = trainer.fit_loop.epoch_loop
        return trainer.current_epoch, loop.batch_progress.current.completed if loop.restarting else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("train_set", "fit"), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("val_set", "validate"))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("test_set", "test"))

    def predict_dataloader(self) -> DataLoader:
        """Batches ``{"image", "path"}`` of ``predict_dir``; without it, of the test split (by file name)."""
        return self._loader(self._dataset("predict_set", "predict"))

    # -- on-device transforms ------------------------------------------------------------------
    def augmentation_summary(self) -> str:
        """One line naming the training augmentation and the normalisation in use (printed at fit)."""
        ops = []
        if self.augment:
            if self.crop_padding > 0:
                ops.append(f"random crop pad {self.crop_padding}" + (" reflect" if self.crop_pad_mode == "reflect" else ""))
            if self.hflip:
                ops.append("hflip alternating by epoch" if self.alternating_flips else "hflip p=0.5")
            if self.scale_range is not None and tuple(self.scale_range) != (1.0, 1.0):
                ops.append(f"zoom {self.scale_range[0]:g}-{self.scale_range[1]:g}")
        norm = "off"
        if self.normalize:
            fmt = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
            norm = f"mean={fmt(self.mean)} std={fmt(self.std)}"
        return f"train augmentation: {', '.join(ops) or 'none'}; normalise {norm}"

    def transform_batch(self, batch: Batch, train: bool) -> Batch:
        """uint8 batch → float image in [0, 1] → (every part augmented alike, if ``train``) →
        resized to ``image_size`` if stored at another size → normalised.

        Returns a new dict; a mask comes out int64 (void = ``ignore_index``). The resize serves
        datasets stored at their native size (CIFAR-10's 32x32 fed to a backbone pretrained at
        224x224): it runs on the batch's device, after the augmentation, so the cache stays small.
        """
        out = dict(batch)
        out[IMAGE] = aug.to_float(batch[IMAGE])
        if MASK in out:
            out[MASK] = out[MASK].long()
        if train and self.augment:
            d = aug.draw(
                out[IMAGE].shape[0], out[IMAGE].device, padding=self.crop_padding,
                flip_p=0.5 if self.hflip else 0.0, scale_range=self.scale_range, pad_mode=self.crop_pad_mode,
            )  # fmt: skip
            if self.alternating_flips and INDEX in batch:
                d.flip = alternating_flips(batch[INDEX], self._epoch(), self.seed).to(out[IMAGE].device)
            out = aug.augment_batch(out, d, ignore_index=self.ignore_index)
        if tuple(out[IMAGE].shape[-2:]) != self.image_size:
            if out.keys() & {MASK, BBOX_XYXY}:
                raise InvalidDatasetError(
                    f"{type(self).__name__}: batch images are {tuple(out[IMAGE].shape[-2:])}, image_size is "
                    f"{self.image_size}; masks and boxes are fitted when decoded, not resized per batch"
                )
            out[IMAGE] = aug.resize(out[IMAGE], self.image_size)
        if self.normalize:
            out[IMAGE] = aug.normalize(out[IMAGE], self.mean, self.std)
        return out

    @property
    def alternating_flips(self) -> bool:
        """Whether training flips alternate by epoch (``hflip`` with ``flip_mode: alternating``)."""
        return self.augment and self.hflip and self.flip_mode == "alternating"

    def _epoch(self) -> int:
        return int(self.trainer.current_epoch) if self.trainer is not None else 0

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Runs on the batch's device; augments only while the trainer is training."""
        training = self.trainer is not None and bool(self.trainer.training)
        return self.transform_batch(batch, train=training)
