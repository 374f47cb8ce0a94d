"""The dashboard's routes (Starlette). Every page is rendered on the server from
the store; the only client-side behaviour is a ``<meta refresh>`` on pages with
live state. Read-only unless ``allow_submit``: then a run's page can queue the
same run again (files from the store, devices of the run), and nothing else.
"""
from __future__ import annotations

import json
import os
import threading
from typing import Optional
from urllib.parse import parse_qs

from device_farm.dashboard import data
from device_farm.store import ResultStore
from edgert.errors import EdgertError
from edgert.formatting import dumps_json


def make_app(store_url: str, allow_submit: bool = False, warm: bool = True):
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import (
        FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response)
    from starlette.routing import Route

    templates = Environment(loader=FileSystemLoader(os.path.join(os.path.dirname(__file__),
                                                                 "templates")),
                            autoescape=select_autoescape(["html"]))
    store = ResultStore(store_url)
    computing = _Background()
    report_dir = os.path.join(_cache_base(), "dashboard-reports")

    def page(name: str, status: int = 200, **ctx) -> HTMLResponse:
        ctx.update(store=store.name, allow_submit=allow_submit)
        return HTMLResponse(templates.get_template(name).render(**ctx), status_code=status)

    def not_found(what: str) -> HTMLResponse:
        return page("error.html", 404, message=f"no {what} in {store.name}")

    async def runs(request: Request):
        rows = await run_in_threadpool(data.runs_page, store)
        return page("runs.html", title="runs", runs=rows)

    async def devices(request: Request):
        rows = await run_in_threadpool(data.devices_page, store)
        return page("devices.html", title="devices", devices=rows, refresh=5)

    async def run(request: Request):
        run_id = request.path_params["run_id"]
        meta = await run_in_threadpool(store.run, run_id)
        if not meta:
            return not_found(f"run {run_id}")
        baseline = request.query_params.get("baseline") or None
        try:
            view = await run_in_threadpool(data.run_page, store, run_id, baseline)
        except EdgertError as exc:
            return page("error.html", 400, message=str(exc))
        live = None
        if meta.get("mode") == "queue" and not str(meta["status"]).startswith("done"):
            from device_farm.team.submit import run_state

            live = await run_in_threadpool(run_state, store, run_id)
        others = [r["run_id"] for r in await run_in_threadpool(store.runs)
                  if r["run_id"] != run_id]
        return page("run.html", title=run_id, run=meta, view=view, live=live,
                    others=list(reversed(others)), refresh=5 if live else None)

    async def report(request: Request):
        run_id = request.path_params["run_id"]
        if not await run_in_threadpool(store.run, run_id):
            return not_found(f"run {run_id}")
        compare_to = request.query_params.get("compare") or None
        baseline = request.query_params.get("baseline") or None
        try:
            path = await run_in_threadpool(_report, store, report_dir, run_id, compare_to,
                                           baseline)
        except EdgertError as exc:
            return page("error.html", 400, message=str(exc))
        return FileResponse(path, media_type="text/html")

    async def run_download(request: Request):
        run_id, fmt = request.path_params["run_id"], request.path_params["fmt"]
        if not await run_in_threadpool(store.run, run_id):
            return not_found(f"run {run_id}")
        rows = await run_in_threadpool(store.results, run_id, not request.query_params.get(
            "all"))
        return _download(rows, fmt, f"{run_id}.{fmt}")

    async def result(request: Request):
        rid = request.path_params["result_id"]
        row = await run_in_threadpool(store.result, rid)
        if not row:
            return not_found(f"result {rid}")
        fmt = request.path_params.get("fmt")
        if fmt:
            return _download([row], fmt, f"result-{rid}.{fmt}")
        return page("result.html", title=f"result {rid}", row=row,
                    latencies=json.loads(str(row.get("latencies_json") or "[]")))

    async def models(request: Request):
        groups = await run_in_threadpool(store.model_groups)
        return page("models.html", title="models", groups=groups)

    async def history(request: Request):
        group = request.path_params["group"]
        try:
            last = int(request.query_params.get("last") or data.HISTORY_RUNS)
        except ValueError:
            return page("error.html", 400, message="last must be a number of runs")
        fmt = request.path_params.get("fmt")
        # the page never waits for the comparisons (a bootstrap each): what is not known
        # yet is computed in the background, and the page reloads until it is there
        view = await run_in_threadpool(data.history_page, store, group, max(1, last),
                                       data.MIN_CHANGE, bool(fmt))
        if view["pending"]:
            computing.start(group, lambda: data.history_page(store, group, max(1, last)))
        if not view["runs"]:
            return not_found(f"results of model {group}")
        if fmt:
            run_ids: list = view["runs"]  # type: ignore[assignment]
            lines: list = view["lines"]   # type: ignore[assignment]
            rows = [dict(c, run_id=rid, variant=ln["variant"], device=ln["device"])
                    for ln in lines for rid, c in zip(run_ids, ln["cells"]) if c]
            cols = ("run_id", "variant", "device", "id", "text", "status", "verdict",
                    "change", "speedup")
            return _download(rows, fmt, f"{group}-history.{fmt}", cols)
        return page("history.html", title=f"history of {group}", view=view, last=last,
                    refresh=2 if view["pending"] else None)

    async def again(request: Request):
        if not allow_submit:
            return PlainTextResponse("this dashboard is read-only (start it with "
                                     "--allow-submit to queue runs from the page)", 403)
        run_id = request.path_params["run_id"]
        form = parse_qs((await request.body()).decode())
        runs_n = int((form.get("runs") or ["0"])[0] or 0) or None
        from device_farm.team.submit import resubmit

        try:
            new = await run_in_threadpool(resubmit, store_url, run_id, runs_n)
        except EdgertError as exc:
            return page("error.html", 400, message=str(exc))
        return RedirectResponse(f"/runs/{new}", status_code=303)

    def _download(rows, fmt: str, name: str, columns=None) -> Response:
        head = {"Content-Disposition": f'attachment; filename="{name}"'}
        if fmt == "json":
            return Response(dumps_json(rows), media_type="application/json", headers=head)
        if fmt == "csv":
            text = data.to_csv(rows, columns) if columns else data.to_csv(rows)
            return Response(text, media_type="text/csv", headers=head)
        return PlainTextResponse(f"unknown format {fmt!r}: json or csv", 404)

    routes = [
        Route("/", runs), Route("/devices", devices), Route("/models", models),
        Route("/models/{group}", history), Route("/models/{group}/history.{fmt}", history),
        Route("/runs/{run_id}", run), Route("/runs/{run_id}/report", report),
        Route("/runs/{run_id}/results.{fmt}", run_download),
        Route("/runs/{run_id}/again", again, methods=["POST"]),
        Route("/results/{result_id:int}", result),
        Route("/results/{result_id:int}.{fmt}", result),
    ]
    app = Starlette(routes=routes)
    app.state.store = store     # closed by whoever ran the app (``dashboard.serve``)
    if warm:
        threading.Thread(target=_warm_histories, args=(store,), name="dashboard-warm",
                         daemon=True).start()
    return app


class _Background:
    """At most one background computation per key at a time."""

    def __init__(self) -> None:
        self._running: set = set()
        self._guard = threading.Lock()

    def start(self, key: str, fn) -> None:
        with self._guard:
            if key in self._running:
                return
            self._running.add(key)

        def run() -> None:
            try:
                fn()
            except Exception:  # noqa: BLE001 - the page shows what it has; it asks again
                pass
            finally:
                with self._guard:
                    self._running.discard(key)

        threading.Thread(target=run, name=f"dashboard-{key}", daemon=True).start()


def _warm_histories(store: ResultStore) -> None:
    """Compute each model's history once in the background, so the run-to-run verdicts
    (a bootstrap each, ``data._verdicts``) are ready before anyone opens the page."""
    try:
        for g in store.model_groups():
            data.history_page(store, str(g["model_group"]))
    except Exception:  # noqa: BLE001 - only a warm-up: a page computes what it lacks
        pass


def _report(store: ResultStore, folder: str, run_id: str, compare_to: Optional[str],
            baseline: Optional[str]) -> str:
    """The run's full report (issue 15's), written once per state of the run."""
    import hashlib

    from device_farm.report import write_report

    n = len(store.results(run_id, latest=False))
    tag = hashlib.sha256(json.dumps([store.name, run_id, compare_to, baseline, n])
                         .encode()).hexdigest()[:16]
    out = os.path.join(folder, tag)
    if not os.path.exists(os.path.join(out, "report.html")):
        write_report(store.path, out, run_id, baseline=baseline, compare_to=compare_to)
    return os.path.join(out, "report.html")


def _cache_base() -> str:
    return os.path.join(os.environ.get("EDGERT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edgert"), "farm")
