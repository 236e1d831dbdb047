"""VideoBERT model side (torch + transformers): config, model, visual tokenizer, collator, inference.

Imports nothing from the pipeline packages (`videobert`, `tasks`, `flows`).
"""
