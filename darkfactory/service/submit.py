"""A run request, checked before it is queued: the same checks as ``darkfactory run``.

The request's spec is written to ``runs/.service/jobs/<id>/spec/<filename>`` and read by
the same loader ``validate`` uses (so an invalid spec gets the same ``file:line`` message,
and HTTP 422); its checkpoints are written into the job's own copy of the server's
``config/`` and validated there. Nothing reaches the queue that ``darkfactory run`` would
refuse at its start. The worker reads the job back with ``load_job_inputs``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from darkfactory.config import FACTORY_FILE, Config, load_config
from darkfactory.errors import InputError
from darkfactory.spec import Spec
from darkfactory.workspace import rundir

JOBS_DIR = ".service/jobs"
#: A spec file name as the request gives it: a plain name, its suffix chooses the format.
FILENAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpecUpload(_Strict):
    filename: str = Field(pattern=FILENAME, examples=["wordcount.yaml"])
    content: str = Field(description="the spec file's text (Markdown, text, YAML ticket, ...)")


class BudgetRequest(_Strict):
    max_llm_calls: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    max_wall_s: float | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, gt=0)


class CheckpointsRequest(_Strict):
    spec_approval: Literal["auto", "ask"] | None = None
    output_review: Literal["auto", "ask"] | None = None
    deploy_approval: Literal["auto", "ask"] | None = None


class RunRequest(_Strict):
    """``POST /api/runs``: everything but ``spec`` is optional."""

    spec: SpecUpload
    model: str | None = Field(
        default=None,
        description="as for `darkfactory run --model`; `scripted:PATH` only for a playbook "
        "under the server's directory",
    )
    format: str | None = Field(default=None, description="spec format, when detection is wrong")
    budget: BudgetRequest | None = None
    checkpoints: CheckpointsRequest | None = None
    repo: str | None = Field(default=None, description="a ticket on this repository (path or URL)")
    base: str | None = None
    kind: Literal["bug", "feature", "tests", "docs", "migrate"] | None = None


class Rejected(Exception):
    """A request the service will not queue: ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Checked:
    run_id: str
    title: str
    spec_file: Path
    options: dict[str, Any]


def check_request(
    req: RunRequest,
    *,
    runs_dir: Path,
    config: Config,
    scripted_root: Path,
    max_spec_bytes: int,
    backend: str | None,
    repo_roots: list[Path] | None = None,
) -> Checked:
    """The request checked and its files in place; ``Rejected`` (413, 422) otherwise."""
    size = len(req.spec.content.encode("utf-8"))
    if size > max_spec_bytes:
        raise Rejected(413, f"the spec is {size} bytes; this server takes at most {max_spec_bytes}")
    _check_model(req.model, scripted_root)
    _check_repo(req.repo, repo_roots)
    jobs = runs_dir / JOBS_DIR
    jobs.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="incoming-", dir=jobs))
    try:
        spec_file = staging / "spec" / req.spec.filename
        spec_file.parent.mkdir()
        spec_file.write_text(req.spec.content, encoding="utf-8")
        job_config = _config_copy(config, staging, req.checkpoints)
        options = {
            "model": req.model,
            "format": req.format,
            "budget": req.budget.model_dump(exclude_none=True) if req.budget else {},
            "checkpoints": req.checkpoints.model_dump(exclude_none=True) if req.checkpoints else {},
            "repo": req.repo,
            "base": req.base,
            "kind": req.kind,
            "backend": backend,
            "tools_dir": str(config.tools_dir) if config.tools_dir else None,
        }
        try:
            load_config(job_config)
            spec = _spec(spec_file, options)
        except InputError as exc:
            raise Rejected(422, _shown(str(exc), staging)) from None
        run_id = rundir.new_run_id(spec.title)
        final = jobs / run_id
        staging.rename(final)
        return Checked(run_id, spec.title, final / "spec" / req.spec.filename, options)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_job_inputs(job: Any) -> tuple[Config, Spec]:
    """The config and spec a queued job runs with (checked when it was queued)."""
    job_dir = Path(job.spec_file).parent.parent
    config = load_config(job_dir / "config")
    tools = job.options.get("tools_dir")
    if tools:
        config = dataclasses.replace(config, tools_dir=Path(tools))
    return config, _spec(Path(job.spec_file), job.options)


def _spec(spec_file: Path, options: dict[str, Any]) -> Spec:
    from darkfactory.spec import load_spec
    from darkfactory.spec.loader import with_target

    spec = load_spec(spec_file, format=options.get("format"))
    return with_target(
        spec, repo=options.get("repo"), base=options.get("base"), kind=options.get("kind")
    )


def _check_model(model: str | None, root: Path) -> None:
    if model is None:
        return
    for prefix in ("scripted:", "replay:"):
        if model.startswith(prefix):
            path = Path(model.removeprefix(prefix))
            full = (path if path.is_absolute() else root / path).resolve()
            if not full.is_relative_to(root.resolve()) or not full.is_file():
                raise Rejected(
                    422,
                    f"model {model}: a {prefix[:-1]} file must be a file under the server's "
                    f"directory ({root}); no request may name a file elsewhere",
                )
            return
    if not model.strip() or any(c.isspace() for c in model):
        raise Rejected(422, f"model {model!r} is not a model name (e.g. openai/gpt-4o-mini)")


def _check_repo(repo: str | None, roots: list[Path] | None) -> None:
    """A git URL, or a local path under one of the server's ``repo_roots``."""
    if repo is None:
        return
    if re.match(r"^(https|ssh)://|^[\w.-]+@[\w.-]+:", repo):
        return
    if "://" in repo:
        raise Rejected(422, f"repo {repo!r}: only https:// and ssh:// git URLs are taken")
    path = Path(repo)
    full = path.resolve() if path.is_absolute() else None
    allowed = [Path(r).resolve() for r in roots or []]
    if full is None or not any(full.is_relative_to(root) for root in allowed):
        where = ", ".join(map(str, allowed)) or "none configured"
        raise Rejected(
            422,
            f"repo {repo!r}: a local repository must be an absolute path under the server's "
            f"repo_roots ({where}); set repo_roots in service.yaml, or give a git URL",
        )


def _config_copy(config: Config, into: Path, checkpoints: CheckpointsRequest | None) -> Path:
    """The server's config for this job, with the request's checkpoints written in."""
    target = into / "config"
    shutil.copytree(config.dir, target)
    wanted = checkpoints.model_dump(exclude_none=True) if checkpoints else {}
    if wanted:
        factory = target / FACTORY_FILE
        data = yaml.safe_load(factory.read_text(encoding="utf-8")) or {}
        data["checkpoints"] = {**(data.get("checkpoints") or {}), **wanted}
        factory.write_text(
            "# The server's factory.yaml with this request's checkpoints.\n"
            + yaml.safe_dump(data, sort_keys=False),
            encoding="utf-8",
        )
    return target


def _shown(message: str, staging: Path) -> str:
    """A message about the job's copy, naming the file as the user sent it."""
    return message.replace(f"{staging}/spec/", "").replace(f"{staging}/", "")
