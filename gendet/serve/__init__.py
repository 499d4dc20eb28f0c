"""The detector as an HTTP service (`gendet serve`).

- app.py: `create_app(...)` (FastAPI): POST /v1/detect, GET /v1/model, GET /health, the page at / and /static.
- batching.py: `BatchQueue`, which groups images from concurrent requests into one forward pass.
- uploads.py / limits.py: reading request bodies under a size cap, and the checks that make every bad
  upload a 4xx with a reason (`Limits`, `ClientError`).
- inference.py: decode + transform (as in `gendet detect`), the model thread, explanations.
- card.py: the model card of GET /v1/model. static/: the web page (plain HTML/CSS/JS, no CDN).

Needs the `gendet[serve]` extra (FastAPI, uvicorn); nothing is imported here, so the CLI loads without it.
"""
