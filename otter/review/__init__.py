"""What the model says about the data: the label audit, look-alikes and copies from embeddings, confusion
matrices. Imports `otter.model` and `otter.data`, no Gradio."""
