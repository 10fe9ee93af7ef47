"""Putting the service together from the command line's choices (``darkfactory serve``)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from darkfactory.config import load_config
from darkfactory.errors import ConfigError, InputError
from darkfactory.service import api, web
from darkfactory.service.auth import TokenStore, is_loopback
from darkfactory.service.context import ServiceContext
from darkfactory.service.notify import Notifier
from darkfactory.service.queue import JobQueue
from darkfactory.service.settings import load_service_settings
from darkfactory.service.worker import WorkerConfig, WorkerPool


def build_context(
    *,
    config_dir: Path | None,
    runs_dir: Path | None,
    host: str,
    port: int,
    jobs: int,
    backend: str | None,
    broker: str | None = None,
    store: Path | None = None,
    queue_name: str = "darkfactory",
) -> ServiceContext:
    """Everything checked before the server listens: config, settings, tokens, the bind."""
    config = load_config(config_dir)
    settings = load_service_settings(config.dir)
    tokens = TokenStore.load(settings)
    if tokens.open and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} with no tokens: anyone who reaches it could run "
            "code and approve runs",
            key="tokens",
            file=config.dir / "service.yaml",
            hint="add tokens (docs/service.md), or bind to 127.0.0.1",
        )
    runs = Path(runs_dir or config.factory.runs_dir).resolve()
    try:
        queue = JobQueue(runs)
    except OSError as exc:
        raise InputError(
            f"the runs directory cannot be written: {exc.strerror}",
            file=runs,
            hint="choose another with --out",
        ) from None
    project_dir = Path.cwd().resolve()
    workers = WorkerConfig(runs_dir=runs, project_dir=project_dir)
    pool: WorkerPool | None = WorkerPool(workers, jobs)
    dispatcher = None
    if broker is not None:  # the runs go to Celery workers; nothing runs here
        from darkfactory.service import distributed
        from darkfactory.service.dispatch import Dispatcher
        from darkfactory.service.store import DirectoryStore

        if store is None:
            raise InputError(
                "--broker needs --store DIR: the run store the workers share",
                hint="e.g. --store /srv/darkfactory/store (a shared filesystem)",
            )
        distributed.check_broker(broker)
        run_store = DirectoryStore(store)
        run_store.check()
        pool = None
        dispatcher = Dispatcher(
            app=distributed.make_app(broker),
            store=run_store,
            queue=queue,
            runs_dir=runs,
            broker=broker,
            queue_name=queue_name,
            max_in_flight=settings.dispatch.max_in_flight,
            max_usd_per_hour=settings.dispatch.max_usd_per_hour,
        )
    # The service's own secrets are read once, here, then gone from the environment the
    # workers (and so every run) start with.
    kept = {n: os.environ.pop(n) for n in settings.secret_variables() if n in os.environ}
    notifier = Notifier(settings.notify, environ={**os.environ, **kept})
    return ServiceContext(
        runs_dir=runs,
        project_dir=project_dir,
        config=config,
        settings=settings,
        tokens=tokens,
        queue=queue,
        public_url=settings.public_url or f"http://{host}:{port}",
        backend=backend,
        pool=pool,
        dispatcher=dispatcher,
        notifier=notifier,
        github_key=kept.get(settings.github.secret_env, "").encode(),
    )


def create_app(ctx: ServiceContext) -> FastAPI:
    app = FastAPI(
        title="Dark Factory",
        version=ctx.version,
        description="Runs the factory as a service: submit specs, follow runs, approve.",
        # No Swagger or ReDoc page: they load their scripts from a CDN. /openapi.json stays.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.include_router(api.router)
    app.include_router(web.router)
    web.mount_static(app)
    return app
