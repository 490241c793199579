"""MLflow "models from code" entry point of the served student (see :mod:`components.registry.serving`).

MLflow runs this file when the registered model loads; logging a file instead of a
pickled object means loading executes only this project's code, never a pickle.
"""

from mlflow.models import set_model

from components.registry.serving import ToolChatModel

set_model(ToolChatModel())
