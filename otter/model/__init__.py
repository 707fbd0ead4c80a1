"""The networks: build, train, save, load, predict, calibrate, explain, and the background jobs that train them.
Imports `otter.data` (never `otter.review` or `otter.app`) and no Gradio."""
