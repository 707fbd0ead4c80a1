"""The Gradio app and its view-models (one `ui_*` file per tab). The only wing that imports Gradio; nothing
outside it imports it."""
