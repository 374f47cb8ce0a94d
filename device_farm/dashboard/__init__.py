"""``edgert farm serve``: the team farm's web page (Starlette, server-rendered
HTML from Jinja2 templates, no JavaScript): runs, devices and their live state,
a run's overview and its full report (``device_farm.report``), a model's history
across runs with regressions marked, and every result as JSON or CSV.

Read-only unless started with ``allow_submit`` (then a run can be queued again
from its page). Modules: ``data`` (what each page reads from the store),
``app`` (routes), ``templates/`` (the pages).
"""
from __future__ import annotations


def serve(store_url: str, host: str = "127.0.0.1", port: int = 8750,
          allow_submit: bool = False) -> None:
    """Run the dashboard until interrupted."""
    import uvicorn

    from device_farm.dashboard.app import make_app

    app = make_app(store_url, allow_submit=allow_submit)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        app.state.store.close()
