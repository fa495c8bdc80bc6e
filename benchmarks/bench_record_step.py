"""Per-step profile of configs/classification/record_fmnist_91.yaml as a plain loop (same model, data path,
optimiser): where a step's time goes (data, forward, backward, optimiser). Run: .venv/bin/python benchmarks/bench_record_step.py"""
import time

import torch

t0 = time.perf_counter()
import lightning  # noqa
t_import = time.perf_counter() - t0
from visionsuite.backbones import create_backbone
from visionsuite.data import FashionMNISTDataModule

dm = FashionMNISTDataModule(data_dir=str(__import__("pathlib").Path(__file__).resolve().parents[1] / "data"), batch_size=256, val_size=5000, augment=False)
t1 = time.perf_counter(); dm.setup("fit"); t_setup = time.perf_counter() - t1
torch.manual_seed(0)
model = create_backbone("lenet5", num_classes=10, in_chans=1, activation="relu", pooling="max", norm="batch", width_mult=2.0).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=0.006, weight_decay=1e-4)
crit = torch.nn.CrossEntropyLoss()
parts = {"data": 0.0, "forward": 0.0, "backward": 0.0, "step": 0.0}
n = 0
start = time.perf_counter()
for i, batch in enumerate(dm.train_dataloader()):
    a = time.perf_counter()
    b = dm.transform_batch(batch, train=True)
    c = time.perf_counter()
    loss = crit(model(b["image"]), b["label"])
    d = time.perf_counter()
    opt.zero_grad(set_to_none=True); loss.backward()
    e = time.perf_counter()
    opt.step()
    f = time.perf_counter()
    parts["data"] += c - a; parts["forward"] += d - c; parts["backward"] += e - d; parts["step"] += f - e
    n += len(b["label"])
epoch = time.perf_counter() - start
print(f"import lightning {t_import:.1f} s; data setup {t_setup:.2f} s; plain epoch {epoch:.1f} s = {n/epoch:.0f} img/s; steps {i+1}")
print({k: f"{v/(i+1)*1000:.2f} ms/step" for k, v in parts.items()}, f"loader+rest {(epoch-sum(parts.values()))/(i+1)*1000:.2f} ms/step")
