"""Pre-training VideoBERT on a corpus version with transformers' Trainer: `run.train` (data, model, resumption,
checkpoints in the store and the database), `trainer.py` (the Trainer subclass and callbacks), `store.py`
(content-addressed folders in the store), `plots.py` (the loss curve), `worker.py` (the torchrun entry).
No Prefect here: the training flow and torchrun both call `run.train`.
"""
