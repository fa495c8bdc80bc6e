"""Loading weights safely and strictly, whatever wrapped them.

Why this module exists:

* ``torch.load`` of an untrusted file can run arbitrary code (pickle). :func:`safe_load` only
  ever unpickles tensors and plain containers (``weights_only=True``) and turns a refusal into
  an :class:`UnsafeWeightsError` that says so, instead of a wall of pickle internals.
* Checkpoints come wrapped (Lightning's ``state_dict``, ``{"model": ...}``, DDP's ``module.``)
  and models come wrapped (a task's ``backbone.``, an adapter's ``model.``). :func:`load_weights`
  finds the prefix mapping that lines the two up, then loads strictly: a partial load raises an
  error listing missing, unexpected and mis-shaped keys rather than silently training from noise.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import re
import socket
import urllib.parse
import urllib.request
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from visionsuite.errors import VisionSuiteError

log = logging.getLogger(__name__)

StateDict = dict[str, Tensor]

#: suffixes that mark a string as a weights file even before it exists (so a typo in a path
#: gives "file not found" rather than "unknown weights name").
WEIGHTS_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".tar")
#: containers whose ``[key]`` holds the real state_dict (Lightning, common training scripts).
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
#: prefixes stripped when *every* key carries them (DDP, Lightning modules, adapters).
_UNIFORM_PREFIXES = ("module.", "model.", "backbone.", "_orig_mod.")


class UnsafeWeightsError(VisionSuiteError, pickle.UnpicklingError):
    """A weights file that would need to run pickled code to load; it is refused, never executed."""


class WeightsMismatchError(VisionSuiteError, RuntimeError):
    """The file's tensors do not match the model's parameters (names or shapes)."""


class WeightsFileError(VisionSuiteError, ValueError):
    """A weights file that cannot be read: truncated, corrupt, not a weights file, or no state_dict in it."""


class WeightsFileNotFoundError(WeightsFileError, FileNotFoundError):
    """The weights path names no file (a typo, or a file not copied yet)."""


class WeightsUnavailableError(VisionSuiteError, RuntimeError):
    """Named (downloadable) weights cannot be fetched, e.g. with no network."""


# -- files -----------------------------------------------------------------------------------
def is_weights_file(value: object) -> bool:
    """True when ``value`` names a file (existing, or path-like with a weights suffix).

    ``create_backbone`` uses it to tell ``weights="ckpt/best.pth"`` from ``weights="DEFAULT"``.
    """
    if isinstance(value, Path):
        return True
    if not isinstance(value, str) or not value:
        return False
    return os.path.isfile(value) or value.lower().endswith(WEIGHTS_SUFFIXES) or os.sep in value


def safe_load(path: str | os.PathLike[str]) -> StateDict:
    """Read a state_dict from ``path`` without ever executing pickled code.

    Accepts ``.safetensors`` and ``torch.save`` files, unwraps Lightning checkpoints and
    ``{"model"|"state_dict": ...}`` containers, and strips a prefix (``module.``, ``model.``,
    ``backbone.``) that every key shares.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileNotFoundError(f"Weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: object = load_file(str(path), device="cpu")
        except Exception as err:  # noqa: BLE001 - safetensors raises its own untyped errors
            raise _unreadable(path, err) from err
    else:
        obj = _torch_load(path)
    return strip_uniform_prefix(_unwrap(obj, path))


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # "Weights only load failed" = a refused object, except "Unsupported operand" (garbage bytes)
        if "Weights only load failed" not in str(err) or "Unsupported operand" in str(err):
            raise _unreadable(path, err) from err
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        detail = f" (it references {found.group(1)})" if found else ""
        raise UnsafeWeightsError(
            f"Refused to load {path}: it contains pickled code{detail}, which could run arbitrary "
            "commands when unpickled. Only plain tensors are loaded; re-save the file as a state_dict "
            "(torch.save(model.state_dict(), ...)) or as .safetensors from a source you trust."
        ) from None
    except Exception as err:  # noqa: BLE001 - a cut file fails as RuntimeError, EOFError, KeyError, ...
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: BaseException) -> WeightsFileError:
    """One line for a file that is not a readable weights file (truncated download, wrong file)."""
    text = str(err)
    opcode = re.search(r"Unsupported operand \d+", text)  # torch's verdict on bytes that are no pickle
    first = opcode.group(0) if opcode else next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = re.split(r"(?<=\.)\s", first)[0][:160].rstrip(".")  # the first sentence is the diagnosis
    reason = f"{type(err).__name__}: {first}" if first else type(err).__name__
    return WeightsFileError(
        f"{path} ({path.stat().st_size} bytes) is not a readable weights file; it may be truncated or "
        f"not a PyTorch/safetensors file ({reason}). Download or save it again."
    )


def _unwrap(obj: object, path: Path) -> StateDict:
    """Dig the tensor mapping out of checkpoint containers."""
    for _ in range(3):  # e.g. {"model": {"state_dict": {...}}}
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    raise WeightsFileError(
        f"{path} holds no state_dict (expected a mapping of tensors, possibly under "
        f"{', '.join(repr(k) for k in _WRAPPER_KEYS)}); got {type(obj).__name__}"
    )


def strip_uniform_prefix(state: Mapping[str, Tensor]) -> StateDict:
    """Remove wrapper prefixes (``module.``, ``model.``, ...) carried by every key."""
    state = dict(state)
    while state:
        prefix = next((p for p in _UNIFORM_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


# -- loading into a model ----------------------------------------------------------------------
@dataclass
class LoadReport:
    """What :func:`load_weights` did: the prefix mapping it chose and any keys left out."""

    stripped: str = ""
    added: str = ""
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    #: classifier keys of the file left out (another class count, or no classifier in the model).
    dropped: list[str] = field(default_factory=list)
    #: classifier keys of the model that kept their fresh initialisation.
    fresh: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 8) -> str:
        parts = []
        groups = (("missing", self.missing), ("unexpected", self.unexpected), ("shape mismatch", self.mismatched))
        for label, keys in groups:
            if keys:
                more = f" … (+{len(keys) - limit} more)" if len(keys) > limit else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:limit])}{more}")
        return "; ".join(parts) or "all keys matched"


def load_weights(
    model: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    strict: bool = True,
    fresh: Collection[str] = (),
) -> LoadReport:
    """Load a file (via :func:`safe_load`) or a state_dict into ``model``.

    Keys are aligned by stripping a prefix from the source and/or adding one the model uses
    (``backbone.``, ``model.``), whichever matches most keys. With ``strict`` any missing,
    unexpected or mis-shaped key raises :class:`WeightsMismatchError` listing them and nothing is
    loaded; with ``strict=False`` the matching tensors load and the rest is logged as a warning.
    Source keys outside a stripped prefix (a task checkpoint's decoder, say) are ignored.
    ``fresh`` names model keys that may stay as initialised (a re-targeted classifier; see
    ``_builder.load_pretrained``, which decides and reports them).
    """
    where = str(source) if not isinstance(source, Mapping) else "state_dict"
    state = strip_uniform_prefix(source) if isinstance(source, Mapping) else safe_load(source)
    target = model.state_dict()
    aligned, report = align_keys(state, target.keys())
    report.missing = [k for k in target if k not in aligned and k not in fresh]
    report.unexpected = [k for k in aligned if k not in target]
    report.mismatched = [
        f"{k} {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in aligned.items()
        if k in target and v.shape != target[k].shape
    ]
    if not report.ok:
        message = f"Weights from {where} do not match {type(model).__name__}: {report.describe()}"
        if strict:
            raise WeightsMismatchError(message)
        log.warning("%s (loading the %d matching tensors)", message, len(aligned) - len(report.unexpected))
    loadable = {k: v for k, v in aligned.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(loadable, strict=strict and not fresh)
    return report


def align_keys(state: Mapping[str, Tensor], target_keys) -> tuple[StateDict, LoadReport]:
    """Rename ``state``'s keys onto ``target_keys`` by the (strip, add) prefix pair matching most keys."""
    target = set(target_keys)
    best: tuple[int, str, str] = (len(target & state.keys()), "", "")
    for strip in _common_prefixes(state.keys()):
        for add in _common_prefixes(target):
            hits = sum(add + k[len(strip) :] in target for k in state if k.startswith(strip))
            if hits > best[0]:
                best = (hits, strip, add)
    _, strip, add = best
    aligned = {add + k[len(strip) :]: v for k, v in state.items() if k.startswith(strip)}
    ignored = [k for k in state if not k.startswith(strip)]
    return aligned, LoadReport(stripped=strip, added=add, ignored=ignored)


def _common_prefixes(keys, depth: int = 3) -> list[str]:
    """``""`` and the dotted prefixes (up to ``depth`` parts) shared by at least half the keys."""
    keys = list(keys)
    counts: dict[str, int] = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, min(depth, len(parts) - 1) + 1):
            p = ".".join(parts[:n]) + "."
            counts[p] = counts.get(p, 0) + 1
    return ["", *(p for p, c in counts.items() if 2 * c >= len(keys))]


def map_state_dict_by_order(source: Mapping[str, Tensor], reference: Mapping[str, Tensor]) -> StateDict:
    """Rename ``source``'s tensors to ``reference``'s keys, one to one in order.

    For ports between libraries whose modules are registered in the same order under different
    names (efficientnet_pytorch → timm). Every shape must match, so a wrong pairing cannot load.
    """
    if len(source) != len(reference):
        raise WeightsMismatchError(
            f"Cannot map by order: the source has {len(source)} tensors, the model {len(reference)}"
        )
    bad = [
        f"{sk} {tuple(sv.shape)} → {rk} {tuple(rv.shape)}"
        for (sk, sv), (rk, rv) in zip(source.items(), reference.items())
        if sv.shape != rv.shape
    ]
    if bad:
        raise WeightsMismatchError(f"Cannot map by order, {len(bad)} shape mismatch(es): {'; '.join(bad[:5])}")
    return dict(zip(reference.keys(), source.values()))


# -- downloads -----------------------------------------------------------------------------------
@functools.cache
def host_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` seconds (cached).

    Lets a request for downloadable weights fail in seconds offline instead of after a
    library's retries. With a proxy configured the check is skipped (assumed reachable).
    """
    if urllib.request.getproxies():
        return True
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def hf_hub_offline() -> Iterator[None]:
    """Make huggingface_hub use its local cache only, for the duration of the block.

    ``HF_HUB_OFFLINE`` is read once at import, so setting the variable later has no effect; the
    module constant is what its downloads consult.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def unavailable(what: str, reason: object, *, url: str | None = None) -> WeightsUnavailableError:
    """The one-line error for downloadable weights that cannot be fetched."""
    first = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    source = f" from {url}" if url else ""
    return WeightsUnavailableError(
        f"Cannot download {what}{source} ({first}). Download the file on a connected machine and pass "
        "its path instead: create_backbone(..., weights='path/to/weights.pth')"
    )
