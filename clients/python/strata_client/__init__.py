"""Log a training loop's epochs into a Strata daemon (stratad).

    from strata_client import StrataLogger

    with StrataLogger("127.0.0.1:50051", name="cifar", optimizer=opt, model=model,
                      task="classification", classes=10) as log:
        for epoch in range(epochs):
            ...
            log.log_epoch(train_loss=tl, val_loss=vl, val_accuracy=acc)

The run then shows in `strata list`, `strata show`, `strata watch`, `strata compare` and
`strata export` like a run stratad trained, marked external.
"""

from .client import StrataClient, StrataError
from .logger import StrataLogger

__all__ = ["StrataClient", "StrataError", "StrataLogger"]
