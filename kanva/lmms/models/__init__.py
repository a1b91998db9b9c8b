"""The models this lmms-eval plugin adds (LMMS_EVAL_PLUGINS=kanva.lmms): name -> class in models/<name>.py."""

AVAILABLE_MODELS = {"kanva": "Kanva"}
