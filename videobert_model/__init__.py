"""VideoBERT model side (numpy, faiss, scikit-learn today; torch + transformers for the model to come).

Today: the visual tokenizer (`visual_tokenizer.py`: hierarchical k-means codebook, labeling, save/load).
Imports nothing from the pipeline packages (`videobert`, `tasks`, `flows`, `videobert_cli`).
"""
