"""spec.json from a job's request and the option it was approved on: what the agent is told to
run, on how many GPUs, with which runs and stages, and what it may read."""

from __future__ import annotations

from schemas.db.tables import Job
from schemas.job import JobSpec
from schemas.spec import QuoteOption, TrainRequest
from schemas.store import job_prefix
from workers.quoting.jobplan import stages_of, sweep_runs


def build_spec(job: Job, option: QuoteOption | None, attempt: int, store_uri: str) -> JobSpec:
    r = TrainRequest.model_validate(job.request)
    return JobSpec(
        job_id=job.id, attempt=attempt, store_uri=f"{store_uri}/{job_prefix(job.id)}",
        model=r.model, data=r.data, method=r.method, precision=r.precision, seq_len=r.seq_len,
        batch_size=r.batch_size, max_samples=r.samples, epochs=r.epochs, max_steps=r.max_steps,
        command=r.command, gradient_checkpointing=bool(option and option.gradient_checkpointing),
        resume_from=f"{store_uri}/{job_prefix(job.resume_of)}" if job.resume_of else None,
        **plan_fields(r, option, store_uri),
        **_security_fields(job),
    )


def plan_fields(r: TrainRequest, option: QuoteOption | None, store_uri: str) -> dict:
    """JobSpec fields for multi-GPU layouts, sweeps and stages (issues #11, #12): the layout the
    approved option was priced with, each run's overrides, the stages and their RL settings."""
    out: dict = {"stages": stages_of(r), "rl_method": r.rl_method}
    if option is not None and option.feasible:
        # nproc_per_node: the GPUs the agent starts processes on; it gives each of the sweep's
        # R runs nproc // R of them, which is the layout this option was priced with.
        out.update(strategy=option.strategy, nproc_per_node=option.gpus_used)
    if r.sweep_key:
        out["runs"] = [{"name": name, "overrides": overrides} for name, overrides in sweep_runs(r)]
    for name in ("n_samples", "top_k", "num_tasks", "rounds", "reward", "eval_samples"):
        if getattr(r, name) is not None:
            out[name] = getattr(r, name)
    if r.init_from:  # a job id means that job's trained weights, where its agent put them
        out["init_from"] = r.init_from if "://" in r.init_from \
            else f"{store_uri}/{job_prefix(r.init_from)}/final/"
    return out


def _security_fields(job: Job) -> dict:
    """security (issue #14): the data roots the agent checks again and whether IMDS is there
    (require_deadline is set by the launch, which knows the price)."""
    from schemas.config import cached_config
    from schemas.settings import get_settings

    settings = get_settings()
    config = cached_config(settings.config_path)
    on_ec2 = (job.provider or settings.provider) == "aws"
    return {"data_local_roots": list(config.data.local_roots),
            "data_s3_prefixes": list(config.data.s3_prefixes),
            "on_ec2": on_ec2, "job_credentials": on_ec2 and bool(settings.aws_job_role)}
