"""Start the Otter Classifier app: `python app.py` (the app_file of the Hugging Face Space).

Settings come from the environment: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (where to listen),
OTTER_DATA_DIR / OTTER_MODELS_DIR (where the data set and the models live), OTTER_PRECISION (auto, fp32 or
bf16: see the README) and OTTER_DEVICE (cpu to ignore a GPU).
"""

from pathlib import Path

from otter.app.ui import build_app, launch

# The models shipped in this repository (models/otters) are copied into $OTTER_MODELS_DIR when it has none yet,
# so a Space whose models live in a Storage Bucket predicts on its first start.
demo = build_app(shipped_models=Path(__file__).resolve().parent / "models")

if __name__ == "__main__":
    launch(demo)
