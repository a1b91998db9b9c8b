"""kanva.grounding: the vision stage that makes each image token the LM's embedding of what its patch shows.

Why: on a 2-core CPU a vision encoder trained from scratch is the bottleneck, and a LLaVA projector trained
with the LM frozen stays near chance on yes/no questions after the few steps we can afford. So:

1. Dense supervision (labels.py, targets.py, pretrain.py). Every patch gets multi-hot labels from the COCO
   boxes that cover it (category, recorded colour, printed word, how many of its kind), trained with a
   per-patch binary cross-entropy: ~36 labelled targets per image instead of one image-level label.
2. A projector that starts out speaking the LM's language (projector.py). The patch classifier goes into
   the projector's first rows and the LM's input embeddings of the label words into the matching columns,
   so an image token starts as "the embedding of what this patch shows". The checkpoint stays a plain HF
   Llava model.
3. Scene text (scene_text.py): an image written as the words its tokens stand for, for a text-only reading
   stage; it reads the label file the vision stage saves (labels.py), so both lay the cells out alike. The
   world, the config and the tokenizer fix that file, so `kanva grounding labels` writes it before the stage
   runs and a reading stage need not wait for the encoder.

Commands: `kanva grounding pretrain`, `labels` and `scene-text` (cli.py). The stage reads COCO
annotations only (kanva/data/coco.py), so it works on any detection-annotated images.
"""
