"""Captioning of annotated segments (the paper's section 4.4): the segments and their inputs (`data`), the
captioner's training and decoding (`run`), and the COCO caption metrics (`metrics`). The model is
`videobert_model.modeling_captioner`."""
