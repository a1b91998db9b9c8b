"""kanva.serve: the OpenAI-compatible vision chat API, the chat page, and export for vLLM.

    from kanva.serve.app import create_app
    from kanva.serve.engine import Engine
    from kanva.serve.worker import BatchWorker
    app = create_app(BatchWorker(Engine.load(model_dir)), "my-model")

Nothing is imported here, so `kanva --help` (which imports kanva.serve.cli) stays light.
"""
