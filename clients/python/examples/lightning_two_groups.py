"""PyTorch Lightning: StrataCallback logs the fit (per step, per epoch, per param group).
Usage: lightning_two_groups.py HOST:PORT"""

import sys

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from strata_client.lightning import StrataCallback

torch.manual_seed(0)
x = torch.randn(600, 2)
y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes
train = DataLoader(TensorDataset(x[:480], y[:480]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[480:], y[480:]), batch_size=120)


class TwoGroups(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()  # logged with the run
        self.body = nn.Sequential(nn.Linear(2, 32), nn.ReLU())
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        # Named param groups are the run's groups, each at its own rate.
        return torch.optim.SGD([
            {"params": self.body.parameters(), "lr": self.hparams.lr / 4, "name": "body"},
            {"params": self.head.parameters(), "lr": self.hparams.lr, "name": "head"},
        ], momentum=0.9)


strata = StrataCallback(name="lightning two groups", classes=3, addr=sys.argv[1])
trainer = pl.Trainer(max_epochs=4, callbacks=[strata], logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, log_every_n_steps=5)
trainer.fit(TwoGroups(), train, val)
print(strata.logger.run_id)
