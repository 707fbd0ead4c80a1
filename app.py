"""Start the Otter Classifier app: `python app.py` (the app_file of the Hugging Face Space).

Settings come from the environment: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (where to listen),
OTTER_DATA_DIR / OTTER_MODELS_DIR (where the data set and the models live), OTTER_PRECISION (auto, fp32 or
bf16: see the README) and OTTER_DEVICE (cpu to ignore a GPU).
"""

from otter.ui import build_app, launch

demo = build_app()

if __name__ == "__main__":
    launch(demo)
