"""Hugging Face transformers: StrataTrainerCallback logs a Trainer (its logs per step, an epoch
per evaluation, the optimizer's param groups). A tiny BERT built from a config: nothing to
download. Usage: huggingface_tiny_bert.py HOST:PORT OUTPUT_DIR"""

import sys

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from strata_client.huggingface import StrataTrainerCallback

torch.manual_seed(0)
g = torch.Generator().manual_seed(0)


def rows(n):  # the label is the first token, mod 3
    ids = torch.randint(3, 20, (n, 8), generator=g)
    return [{"input_ids": i, "attention_mask": torch.ones(8, dtype=torch.long), "labels": i[0] % 3} for i in ids]


config = BertConfig(vocab_size=24, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16, num_labels=3)
model = BertForSequenceClassification(config)


def accuracy(p):
    return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}


args = TrainingArguments(output_dir=sys.argv[2], num_train_epochs=3, per_device_train_batch_size=32,
                         learning_rate=5e-3, eval_strategy="epoch", logging_steps=2, save_strategy="no",
                         report_to=[], use_cpu=True, disable_tqdm=True)
strata = StrataTrainerCallback(name="hf tiny bert", addr=sys.argv[1])
trainer = Trainer(model=model, args=args, train_dataset=rows(256), eval_dataset=rows(64),
                  compute_metrics=accuracy, callbacks=[strata])
trainer.train()
print(strata.logger.run_id)
