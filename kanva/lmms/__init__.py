"""lmms-eval model entry for Kanva model directories: `lmms_eval --model kanva --model_args pretrained=DIR`.

Registered two ways, as lmms-eval looks for plugins: the entry point `lmms_eval.models: kanva` (in
pyproject.toml; active once Kanva is pip-installed) returns `manifest()`, and the older
`LMMS_EVAL_PLUGINS=kanva.lmms` reads `kanva.lmms.models.AVAILABLE_MODELS`. The model itself is in
`kanva/lmms/models/kanva.py`; lmms-eval is imported only there, so Kanva never needs it installed.
"""


def manifest():
    """lmms-eval's ModelManifest for the `kanva` model."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="kanva", simple_class_path="kanva.lmms.models.kanva.Kanva")
