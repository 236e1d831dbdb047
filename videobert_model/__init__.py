"""VideoBERT model side: numpy, faiss and scikit-learn for the codebook, torch + transformers for the model.

* `visual_tokenizer.py`: hierarchical k-means codebook, labeling, save/load.
* `corpus.py`: training examples from tokens and timed sentences.
* `configuration_videobert.py`, `modeling_videobert.py`: `VideoBertConfig`, `VideoBertForPreTraining` (the
  layout of a transformers model; checkpoints carry these two files for `trust_remote_code=True`).
* `collator.py`: batches with BERT's masking of text and video.

Imports nothing from the pipeline packages (`videobert`, `tasks`, `flows`, `videobert_cli`).
"""
