"""Log a PyTorch training loop into a Strata daemon (stratad), and read runs back.

    from strata_client import StrataLogger

    with StrataLogger("127.0.0.1:50051", name="cifar", optimizer=opt, model=model,
                      task="classification", classes=10) as log:
        for epoch in range(epochs):
            for x, y in loader:
                ...
                log.log(step=global_step, train_loss=loss)
            log.log_epoch(train_loss=tl, val_loss=vl, val_accuracy=acc)

Logging never waits on the network and never fails the loop for want of a daemon: a background
thread sends what is logged, and keeps it in a spool file while stratad is away (`strata sync`
sends a spool later). Reading back: `runs()`, `run(id)`, `compare(ids)`. Framework callbacks:
`strata_client.lightning.StrataCallback`, `strata_client.huggingface.StrataTrainerCallback`.
"""

from .client import StrataClient, StrataError
from .logger import StrataLogger
from .readback import Comparison, GroupDiagnosis, Run, RunInfo, compare, run, runs
from .sender import CloseReport

__version__ = "0.2.0"

__all__ = [
    "StrataLogger",
    "StrataClient",
    "StrataError",
    "CloseReport",
    "runs",
    "run",
    "compare",
    "Run",
    "RunInfo",
    "GroupDiagnosis",
    "Comparison",
]
