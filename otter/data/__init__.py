"""Files and the web: the data set on disk (classes, images, trash, manifest), safe paths, downloads and web
search, synthetic images. Imports no torch, no model code and no Gradio."""
