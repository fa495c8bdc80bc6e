"""Generative-models benchmark (issue #10); writes ``benchmarks/results/generative.md`` and the final
sample grids as PNG beside it.

1. Convolutional VAE vs Kingma & Welling's MLP VAE (784-500-500-16, tanh) on Fashion-MNIST, each
   trained for the same wall-clock budget (Adam 1e-3, batch 128, Bernoulli likelihood on grey
   values): test negative ELBO in nats per image on the 10k test images (one posterior sample per
   image from a seeded generator).
2. DCGAN for a wall-clock budget: FID/KID in the feature space of a LeNet-5 quickly trained on
   Fashion-MNIST (named ``lenet5_fashion_mnist``), measured at thirds of the budget, next to the
   real-vs-real floor (train vs test images) and the noise ceiling (uniform noise vs test).
3. Throughput of VAETask and GANTask under ``Trainer.fit`` against a plain PyTorch loop doing the
   same work on the same model and batches (paired runs, interleaved; median of the ratios).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_generative.py [--budget 180] [--gan-budget 180]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
BATCH = 128

from step_clock import StepClock  # noqa: E402

from visionsuite.backbones import create_backbone  # noqa: E402
from visionsuite.data import FashionMNISTDataModule  # noqa: E402
from visionsuite.models.generative import (  # noqa: E402
    MLPVAE,
    ConvAutoencoder,
    ConvVAE,
    DCGANDiscriminator,
    DCGANGenerator,
    build_sample_metrics,
    classifier_features,
    compute_sample_metrics,
    denormalize,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    negative_elbo,
    reparameterize,
    to_signed,
    to_unit,
    vae_loss,
)
from visionsuite.outputs.generative_pictures import image_grid, save_png  # noqa: E402


def load_data(data_dir: str) -> tuple[FashionMNISTDataModule, Tensor, Tensor, Tensor, Tensor]:
    """The data module, and all train / test images as [0, 1] pixels (through its own pipeline)."""
    dm = FashionMNISTDataModule(data_dir=data_dir, val_size=5000, augment=False, batch_size=BATCH)
    dm.prepare_data()
    dm.setup("fit")

    def pixels(ds) -> tuple[Tensor, Tensor]:
        batch = ds[list(range(len(ds)))]
        return denormalize(dm.transform_batch(batch, train=False)["image"], dm.mean, dm.std), batch["label"]

    train, train_y = pixels(dm.train_set)
    test, test_y = pixels(dm.test_set)
    return dm, train, train_y, test, test_y


@torch.no_grad()
def test_nelbo(model: nn.Module, test: Tensor) -> tuple[float, float, float]:
    """Mean (negative ELBO, nll, KL) in nats per image over ``test``."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    parts = []
    for x in test.split(500):
        mu, logvar = model.encode(x)
        out = model.decode(reparameterize(mu, logvar, generator=gen))
        parts.append(torch.stack(negative_elbo(x, out, mu, logvar, "bernoulli")))
    t = torch.cat(parts, dim=1).mean(1)
    model.train()
    return float(t[0]), float(t[1]), float(t[2])


def train_vae(model: nn.Module, train: Tensor, budget: float) -> tuple[int, int]:
    """Adam 1e-3 on shuffled batches until ``budget`` seconds pass; (steps, epochs started)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps, epochs, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        epochs += 1
        for idx in torch.randperm(len(train)).split(BATCH):
            x = train[idx]
            out = model(x)
            loss = vae_loss(model.elbo_terms(x, out), 1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - start >= budget:
                break
    return steps, epochs


def train_lenet(train: Tensor, train_y: Tensor, test: Tensor, test_y: Tensor, dm, path: Path, budget: float) -> float:
    """A LeNet-5 classifier for the FID feature space; returns its test accuracy."""
    from visionsuite.models.generative.pixels import normalize

    net = create_backbone("lenet5", num_classes=10, in_chans=1)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    start = time.perf_counter()
    while time.perf_counter() - start < budget:
        for idx in torch.randperm(len(train)).split(BATCH):
            loss = nn.functional.cross_entropy(net(normalize(train[idx], dm.mean, dm.std)), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if time.perf_counter() - start >= budget:
                break
    net.eval()
    with torch.no_grad():
        acc = float((net(normalize(test, dm.mean, dm.std)).argmax(1) == test_y).float().mean())
    torch.save(net.state_dict(), path)
    return acc


def gan_step(g: nn.Module, d: nn.Module, opt_g, opt_d, real01: Tensor, latent: int, loss: str = "nonsaturating",
             gp_weight: float = 0.0, generator_turn: bool = True) -> None:  # fmt: skip
    """GANTask's batch: a discriminator (critic) step, with the gradient penalty when ``gp_weight``
    is set, and a generator step when it is the generator's turn (every ``n_critic``-th batch)."""
    real = to_signed(real01)
    with torch.no_grad():
        fake = g(torch.randn(len(real), latent))
    d_loss = discriminator_loss(loss, d(real), d(fake))
    if gp_weight:
        d_loss = d_loss + gp_weight * gradient_penalty(d, real, fake)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    if generator_turn:
        d.requires_grad_(False)
        g_loss = generator_loss(loss, d(g(torch.randn(len(real), latent))))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        d.requires_grad_(True)


@torch.no_grad()
def feed(metrics: dict, images: Tensor, real: bool) -> None:
    for chunk in images.split(500):
        for m in metrics.values():
            m.update(chunk, real=real)


def sample(g: nn.Module, n: int, latent: int, seed: int = 0) -> Tensor:
    g.eval()
    with torch.no_grad():
        out = to_unit(g(torch.randn(n, latent, generator=torch.Generator().manual_seed(seed))))
    g.train()
    return out


def sample_scores(extractor, real: Tensor, fake: Tensor, kid_subsets: int = 50) -> dict[str, float]:
    """FID and KID (subsets of 1000) of ``fake`` against ``real``, [0, 1] pixels, in ``extractor``'s space."""
    metrics = build_sample_metrics(extractor, kid_subset_size=1000, kid_subsets=kid_subsets)
    feed(metrics, real, True)
    feed(metrics, fake, False)
    return compute_sample_metrics(metrics)


# -- task vs plain loop --------------------------------------------------------------------------
def task_images_per_s(task, dm, steps: int, skip: int) -> float:
    from lightning.pytorch import Trainer

    clock = StepClock()
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=steps, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[clock], num_sanity_val_steps=0, default_root_dir=tempfile.mkdtemp(prefix="bench-gen-"),
    )  # fmt: skip
    trainer.fit(task, datamodule=dm)
    return clock.images_per_second(BATCH, skip)


def loop_images_per_s(step_fn, dm, steps: int, skip: int) -> float:
    loader = dm.train_dataloader()
    start = 0.0
    for i, batch in enumerate(loader):
        if i == steps:
            break
        if i == skip:
            start = time.perf_counter()
        x = denormalize(dm.transform_batch(batch, train=True)["image"], dm.mean, dm.std)
        step_fn(x)
    return (steps - skip) * BATCH / (time.perf_counter() - start)


def throughput(data_dir: str, pairs: int, steps: int, models: tuple[str, ...] = ("VAE (conv, 16-D)", "DCGAN")) -> dict[str, tuple[float, float, float]]:
    from visionsuite.tasks import AutoencoderTask, GANTask, VAETask

    dm = FashionMNISTDataModule(data_dir=data_dir, batch_size=BATCH, augment=False, train_subset=BATCH * steps, drop_last=True)
    dm.prepare_data()
    dm.setup("fit")
    results: dict[str, tuple[float, float, float]] = {}
    for name in models:
        ratios, task_rates, loop_rates = [], [], []
        for _ in range(pairs):
            if name.startswith("VAE"):
                task = VAETask(latent_dim=16, optimizer="adam", lr=1e-3)
                model = ConvVAE(latent_dim=16)
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)

                def step(x: Tensor, model=model, opt=opt) -> None:
                    loss = vae_loss(model.elbo_terms(x, model(x)), 1.0)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            elif name.startswith("AE"):
                task = AutoencoderTask(optimizer="adam", lr=1e-3)
                model = ConvAutoencoder(1, 28, 32)  # the task's defaults: widths (32, 64), nearest upsampling
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)

                def step(x: Tensor, model=model, opt=opt) -> None:
                    loss = nn.functional.mse_loss(model(x), x)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            elif name == "WGAN-GP":
                task = GANTask(latent_dim=100, loss="wasserstein", gp_weight=10.0, d_norm="none", n_critic=5,
                               optimizer="adam", lr=1e-4, betas=(0.0, 0.9))  # fmt: skip
                g, d = DCGANGenerator(100), DCGANDiscriminator(norm="none")
                og = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
                od = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))

                def step(x: Tensor, g=g, d=d, og=og, od=od, seen=[0]) -> None:  # noqa: B006 (a per-run counter)
                    gan_step(g, d, og, od, x, 100, "wasserstein", 10.0, generator_turn=(seen[0] + 1) % 5 == 0)
                    seen[0] += 1
            else:
                task = GANTask(latent_dim=100)
                g, d = DCGANGenerator(100), DCGANDiscriminator()
                og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
                od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))

                def step(x: Tensor, g=g, d=d, og=og, od=od) -> None:
                    gan_step(g, d, og, od, x, 100)
            if len(ratios) % 2:  # alternate which runs first, so warm caches favour neither
                p = loop_images_per_s(step, dm, steps, skip=5)
                t = task_images_per_s(task, dm, steps, skip=5)
            else:
                t = task_images_per_s(task, dm, steps, skip=5)
                p = loop_images_per_s(step, dm, steps, skip=5)
            task_rates.append(t)
            loop_rates.append(p)
            ratios.append(t / p)
        results[name] = (statistics.median(task_rates), statistics.median(loop_rates), statistics.median(ratios))
    return results


SECTIONS = ("vae", "gan", "throughput", "throughput-more")


def vae_section(args: argparse.Namespace, train: Tensor, test: Tensor) -> list[str]:
    lines = ["## 1. Convolutional VAE vs MLP VAE (Kingma & Welling), same wall-clock budget", "",
             f"Fashion-MNIST, {len(train)} training images, Bernoulli likelihood on grey values (a cross-entropy: "
             "comparable between these models, not with discrete-likelihood papers), 16-D latent, Adam 1e-3, batch "
             f"{BATCH}, {args.budget:g} s of training each, one after the other in one process "
             f"({torch.get_num_threads()} torch thread(s)). Test = the 10k test images.", "",
             "| model | parameters | steps (epochs) in budget | test −ELBO (nats/image) | nll | KL |", "|---|---|---|---|---|---|"]
    models = (("ConvVAE: convs 32-64 (stride 2, batch norm), fc 256, transposed-conv decoder (the defaults)", ConvVAE(latent_dim=16)),
              ("MLPVAE 784-500-500-16 tanh", MLPVAE(latent_dim=16)))
    for name, model in models:
        steps, epochs = train_vae(model, train, args.budget)
        nelbo, nll, kl = test_nelbo(model, test)
        n_params = sum(p.numel() for p in model.parameters())
        lines.append(f"| {name} | {n_params:,} | {steps} ({epochs}) | **{nelbo:.2f}** | {nll:.2f} | {kl:.2f} |")
        print(lines[-1], flush=True)
        if name.startswith("Conv"):
            model.eval()
            save_png(image_grid(model.sample(64, generator=torch.Generator().manual_seed(0))), RESULTS / "generative_vae_samples.png")
    return [*lines, "", "Conv VAE prior samples: `generative_vae_samples.png`.", ""]


def gan_section(args: argparse.Namespace, dm, train: Tensor, train_y: Tensor, test: Tensor, test_y: Tensor) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "lenet5_fmnist.pt"
        acc = train_lenet(train, train_y, test, test_y, dm, weights, args.lenet_budget)
        extractor = classifier_features(
            "lenet5", weights, "lenet5_fashion_mnist", num_classes=10, mean=dm.mean, std=dm.std, in_chans=1
        )
    n_eval = 2000
    reference = test[:5000]
    floor = sample_scores(extractor, reference, train[:n_eval])
    ceiling = sample_scores(extractor, reference, torch.rand(n_eval, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    g, d = DCGANGenerator(100), DCGANDiscriminator()
    og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    curve = []
    steps, trained = 0, 0.0
    for third in (1, 2, 3):
        t0 = time.perf_counter()
        while trained + (time.perf_counter() - t0) < args.gan_budget * third / 3:
            idx = torch.randint(len(train), (64,))
            gan_step(g, d, og, od, train[idx], 100)
            steps += 1
        trained += time.perf_counter() - t0
        curve.append((trained, steps, sample_scores(extractor, reference, sample(g, n_eval, 100))))
        print(curve[-1], flush=True)
    save_png(image_grid(sample(g, 64, 100)), RESULTS / "generative_dcgan_samples.png")
    fid_key, kid_key = "fid_lenet5_fashion_mnist", "kid_lenet5_fashion_mnist"
    lines = ["## 2. DCGAN: FID / KID in the LeNet-5 (Fashion-MNIST) feature space", "",
             f"Feature space `lenet5_fashion_mnist`: the 84-d pre-logits features of a LeNet-5 trained {args.lenet_budget:g} s "
             f"on Fashion-MNIST (test accuracy {acc:.2%}). Not Inception FID: these numbers compare only with each other. "
             f"{n_eval} images per set against the first 5000 test images; KID: 50 subsets of 1000. DCGAN: batch 64, Adam 2e-4, "
             f"betas (0.5, 0.999), non-saturating loss, no EMA, sampled in eval mode, {args.gan_budget:g} s of training.", "",
             f"| set | {fid_key} | {kid_key} (± std) |", "|---|---|---|",
             f"| real vs real floor (train vs test images) | {floor[fid_key]:.3f} | {floor[kid_key]:.4f} ± {floor[kid_key + '_std']:.4f} |"]
    for secs, st, sc in curve:
        lines.append(f"| DCGAN after {secs:.0f} s ({st} steps) | {sc[fid_key]:.3f} | {sc[kid_key]:.4f} ± {sc[kid_key + '_std']:.4f} |")
    return [*lines, f"| noise ceiling (uniform noise vs test) | {ceiling[fid_key]:.3f} | {ceiling[kid_key]:.4f} ± {ceiling[kid_key + '_std']:.4f} |", "",
            "Final samples: `generative_dcgan_samples.png`.", ""]


def throughput_section(args: argparse.Namespace, models: tuple[str, ...] = ("VAE (conv, 16-D)", "DCGAN")) -> list[str]:
    rates = throughput(args.data_dir, args.pairs, args.steps, models)
    lines = ["## 3. Task vs plain PyTorch loop (training throughput)", "",
             f"Same model, batches of {BATCH} from the same data module (on-device normalisation undone to [0, 1]), "
             f"{args.steps} steps per run, first 5 untimed, {args.pairs} pairs interleaved (task first in even pairs, loop first in odd ones); "
             f"median; {torch.get_num_threads()} torch thread(s). The GAN's two optimiser steps per batch are in both. "
             "Goal: ratio ≥ 0.95.", "",
             "| model | task images/s | plain loop images/s | ratio (median of pairs) |", "|---|---|---|---|"]
    for name, (t, p, r) in rates.items():
        lines.append(f"| {name} | {t:.0f} | {p:.0f} | {r:.3f} |")
    return [*lines, ""]


def throughput_more_section(args: argparse.Namespace) -> list[str]:
    """Section 3's measurement for the other two trained models: WGAN-GP and the autoencoder."""
    lines = throughput_section(args, models=("WGAN-GP", "AE (conv)"))
    lines[0] = "## 4. Task vs plain PyTorch loop: WGAN-GP and the autoencoder"
    return [*lines[:-1], "WGAN-GP: λ 10, one critic step per batch and a generator step every fifth batch, in both "
            "(GANTask's `n_critic: 5`). AE: `AutoencoderTask`'s defaults, pixel MSE.", ""]


def replace_sections(old: str, new: dict[str, list[str]]) -> list[str]:
    """The results file with the sections in ``new`` (keyed by their ``## N.`` heading number)
    replaced or added, the others kept as they were."""
    parts: dict[str, list[str]] = {}
    key = None
    for line in old.splitlines():
        if line.startswith("## "):
            key = line.split()[1].rstrip(".")
        if key is not None:
            parts.setdefault(key, []).append(line)
    parts.update(new)
    return [line for k in sorted(parts) for line in parts[k]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to run; the other sections of the results file are kept")
    parser.add_argument("--budget", type=float, default=180.0, help="seconds of training per VAE")
    parser.add_argument("--gan-budget", type=float, default=180.0, help="seconds of DCGAN training")
    parser.add_argument("--lenet-budget", type=float, default=60.0, help="seconds of LeNet-5 training (FID features)")
    parser.add_argument("--pairs", type=int, default=3, help="task/loop throughput pairs per model")
    parser.add_argument("--steps", type=int, default=30, help="training steps per throughput run")
    parser.add_argument("--data_dir", default=str(ROOT / "data"))
    args = parser.parse_args()
    torch.manual_seed(0)
    load_before = os.getloadavg()
    dm, train, train_y, test, test_y = load_data(args.data_dir)
    new: dict[str, list[str]] = {}
    if "vae" in args.sections:
        new["1"] = vae_section(args, train, test)
    if "gan" in args.sections:
        new["2"] = gan_section(args, dm, train, train_y, test, test_y)
    if "throughput" in args.sections:
        new["3"] = throughput_section(args)
    if "throughput-more" in args.sections:
        new["4"] = throughput_more_section(args)
    command = (f"PYTHONPATH=. python benchmarks/bench_generative.py --sections {' '.join(args.sections)} --budget {args.budget:g} "
               f"--gan-budget {args.gan_budget:g} --lenet-budget {args.lenet_budget:g} --pairs {args.pairs} --steps {args.steps}")
    stamp = (f"*Measured by `{command}`: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
             f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), no GPU, load average {load_before[0]:.1f} at "
             f"start and {os.getloadavg()[0]:.1f} at the end (above 1.0: another job shared the machine, so absolute "
             "speeds and what a budget reaches are lower than on an idle one).*")
    for key in new:
        new[key].insert(1, "")
        new[key].insert(2, stamp)
    path = RESULTS / "generative.md"
    old = path.read_text() if path.exists() else ""
    head = ["# Generative models benchmark (issue #10)", "",
            "Each section states the command and the conditions it was measured under; "
            "`--sections` reruns some and keeps the others.", ""]
    path.write_text("\n".join([*head, *replace_sections(old, new)]) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    main()
