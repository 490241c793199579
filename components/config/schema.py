"""Typed, frozen models of ``params.yaml``: the one home of every default and cross-field rule.

``params.yaml`` holds only what a user chooses (the profile, the models, the task
packs, the profiles' overlays); every value it leaves out comes from a default
here, so the two can never disagree (``tests/config/test_params_file.py`` fails
when the file restates a default). Checks that involve more than one key live
here too, as model validators, so ``mentor params show`` rejects a configuration
before a stage spends hours on it and then refuses.

Every section forbids unknown keys so that a typo in a params file fails loudly
instead of silently falling back to a default; ``loader.load_params`` turns the
pydantic errors into messages that name the dotted key and the allowed values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from components.stages import STAGES


class _Section(BaseModel):
    """Base for every params section: immutable, strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ProjectParams(_Section):
    """Where state lives and the global seed."""

    name: str = "mentor-pipeline"
    state_dir: str = ".mentor"
    output_dir: str = "outputs"
    seed: int = 0


class ModelsParams(_Section):
    """Which models play student and (for the ``hf`` backend) teacher.

    Names resolve through ``components.models.sources``: a built-in offline name
    (``smollm2-135m-instruct``, ``qwen2.5-coder-0.5b-instruct``, ``tiny-random``),
    a local directory, or an HF hub id for users with hub access.
    """

    student: str = "smollm2-135m-instruct"
    teacher: str = "qwen2.5-coder-0.5b-instruct"
    cache_dir: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    #: Training arithmetic: ``auto`` = bf16 autocast where the GPU or CPU has bf16 units
    #: (weights stay ``dtype``; decoding keeps ``dtype``), ``fp32`` or ``bf16`` to force it.
    train_precision: Literal["auto", "fp32", "bf16"] = "auto"


class TeacherParams(_Section):
    """How reference trajectories are produced (stage 1)."""

    backend: Literal["scripted", "hf", "openai"] = "scripted"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: PositiveInt = 4
    max_retries: int = Field(default=4, ge=0)
    request_timeout_s: PositiveFloat = 120.0
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_new_tokens: PositiveInt = 256
    max_turns: PositiveInt = 5
    batch_size: PositiveInt = 8


class TasksParams(_Section):
    """Which tool packs feed training and evaluation, and how many tasks."""

    train_packs: list[str] = Field(default_factory=lambda: ["arith"])
    eval_packs: list[str] = Field(default_factory=lambda: ["units", "calendar", "store"])
    n_train: PositiveInt = 400
    n_eval: PositiveInt = 100
    difficulties: list[int] = Field(default_factory=lambda: [1, 2, 3])
    seed: int = 0
    eval_seed: int = 10_000


class ValidationParams(_Section):
    """Thresholds of the fail-closed data validation (stage 2)."""

    min_per_pack_difficulty: PositiveInt = 5
    max_messages: PositiveInt = 16
    max_chars: PositiveInt = 8000


class LoraParams(_Section):
    """LoRA adapter shape, used when ``use_lora`` is on in SFT or RL."""

    r: PositiveInt = 16
    alpha: PositiveInt = 32
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class SftParams(_Section):
    """SFT warm start (stage 3)."""

    enabled: bool = True
    use_lora: bool = False
    lora: LoraParams = LoraParams()
    learning_rate: PositiveFloat = 5e-5
    epochs: PositiveFloat = 2.0
    max_steps: int = -1
    batch_size: PositiveInt = 4
    grad_accum: PositiveInt = 1
    #: Rows per forward pass; the optimizer still steps every ``batch_size x grad_accum`` rows with
    #: the same loss (TRL divides by the loss tokens of the whole accumulated batch). ``null`` = 1
    #: on a CPU: no padding and no attention mask, so attention takes the causal kernel
    #: (components.training.sft.stage.micro_batching); ``batch_size`` on a GPU. Must divide batch_size.
    micro_batch_size: PositiveInt | None = None
    #: The prompt alone (system + 12 tool schemas) is ~1.5k tokens.
    max_length: PositiveInt = 2048
    save_steps: PositiveInt = 50
    logging_steps: PositiveInt = 5
    seed: int = 0
    #: LM head only at the ~10% of positions whose label is not -100 (same loss and gradients,
    #: components.training.sft.trainer); false = TRL's stock head over every position.
    loss_positions_only: bool = True
    #: Which weights the forward and backward passes compute with when training runs in bf16
    #: (``models.train_precision``): ``autocast`` = fp32 weights cast per op (TRL's ``bf16=True``);
    #: ``bf16`` = the model held in bf16 beside fp32 master weights in the optimizer, gradients
    #: summed in fp32 (components.training.master_weights; 1.17x faster SFT steps measured on a bf16 CPU);
    #: ``auto`` = ``bf16`` for full fine-tuning in one process on a CPU that trains in bf16, else autocast.
    compute_weights: Literal["auto", "autocast", "bf16"] = "auto"
    #: Causal attention in training: ``blocked`` = plain matmuls over query blocks with a written-out
    #: backward (components.training.causal_attention; 1.10x faster SFT steps on a 2-core EPYC,
    #: more memory), ``sdpa`` = PyTorch's kernel, ``auto`` = blocked on a CPU, SDPA on a GPU. Padded
    #: batches, generation and evaluation always use SDPA; saved models load with SDPA.
    attention: Literal["auto", "sdpa", "blocked"] = "auto"
    #: Rows of one optimizer step that start with the same tokens (a pack's system header, ~620 of
    #: ~785 arith tokens) run that head once, with gradients, and only their own tokens per row
    #: (components.training.sft.trainer.SharedPrefixSFTTrainer; loss and gradients equal per-row
    #: training). ``auto`` = on a CPU (the whole ``batch_size`` is then one micro-batch), off on a GPU.
    shared_prefix: Literal["auto", "on", "off"] = "auto"

    @field_validator("shared_prefix", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: object) -> object:
        """YAML 1.1 reads a bare ``on``/``off`` as a boolean; take it as the word the user wrote."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


RewardMode = Literal["mentor", "mentor-f1", "mentor-overlap", "mentor-notool", "sparse", "strict"]
DEFAULT_COMPARE_ARMS: tuple[RewardMode, ...] = ("mentor", "sparse", "strict")


class RewardParams(_Section):
    """Weights and gates of the rewards (README, "Fidelity to the authors' code"; pinned in tests/training/rl/test_rewards.py); the mode is the RL arm."""

    eos_gate: float = 0.0
    missing_box: float = 0.1
    correct: float = 0.7
    tool_match: float = 0.3
    no_hallucination: float = 0.1
    wrong_scale: float = 0.2
    sparse_correct: float = 1.0
    sparse_wrong: float = 0.1
    strict_correct: float = 1.0
    strict_other: float = 0.1


class RlParams(_Section):
    """MENTOR GRPO and its baselines (stage 4).

    Defaults are the authors' settings (choics2623/MENTOR-RL: ``ppo_trainer.yaml``, the
    tool rollout, ``train_qwen3.sh``); README, "Fidelity to the authors' code", lists
    each one and every deliberate deviation. ``max_turns`` counts *generation rounds*
    as the authors' ``max_turns`` does: at most ``max_turns - 1`` tool rounds, then the
    answer (TRL's ``max_tool_calling_iterations`` = ``max_turns - 1``). ``beta`` is the
    KL-loss coefficient (TRL's k3 estimator = verl's ``low_var_kl``), ``entropy_coef``
    the entropy bonus, ``dual_clip`` the dual-clip bound c of the ratio for negative
    advantages (TRL's ``delta``; ``null`` switches it off). ``difficulties`` keeps
    only the teacher rows of these task levels as RL prompts (``null`` = all): a
    group teaches only when its rewards differ, so RL is pointed at the levels
    where the student sometimes succeeds and sometimes fails.
    """

    arm: RewardMode = "mentor"
    compare_arms: list[RewardMode] = Field(default_factory=lambda: list(DEFAULT_COMPARE_ARMS))
    reward: RewardParams = RewardParams()
    use_lora: bool = False
    lora: LoraParams = LoraParams()
    #: Constant, as the authors.
    learning_rate: PositiveFloat = 1e-6
    max_steps: PositiveInt = 20
    #: Completions per micro-batch: one group of 10.
    batch_size: PositiveInt = 10
    grad_accum: PositiveInt = 1
    #: The authors' group size (rollouts per prompt).
    num_generations: int = Field(default=10, ge=2)
    max_completion_length: PositiveInt = 256
    max_turns: int = Field(default=5, ge=1)
    #: The authors' sampling inside the tool loop (temperature, top_p, top_k).
    temperature: PositiveFloat = 0.6
    top_p: float = Field(default=0.99, gt=0.0, le=1.0)
    top_k: int = Field(default=20, ge=0)
    beta: float = Field(default=0.001, ge=0.0)
    entropy_coef: float = Field(default=0.001, ge=0.0)
    #: verl's ``clip_ratio_c``; the PPO clip 0.2 is TRL's default ``epsilon``.
    dual_clip: float | None = Field(default=3.0, gt=1.0)
    n_train: PositiveInt = 200
    difficulties: list[PositiveInt] | None = Field(default=None, min_length=1)
    save_steps: PositiveInt = 10
    logging_steps: PositiveInt = 1
    use_vllm: bool = False
    #: ``colocate``: vLLM inside each training process, sharing its GPU (``vllm_gpu_memory_utilization`` of it);
    #: ``server``: generation through a ``trl vllm-serve`` process at ``vllm_server_host:vllm_server_port``
    #: on GPUs of its own (``infra/vllm/serve.sh``), weights pushed to it after every optimizer step.
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(default=0.3, gt=0.0, le=1.0)
    vllm_server_host: str = "127.0.0.1"
    vllm_server_port: int = Field(default=8000, ge=1, le=65535)
    #: Off: with the compact tool listing arith prompts are ~0.7k tokens, so memory does not need it,
    #: and it costs ~15% of a step when on (TRL's own default is on).
    gradient_checkpointing: bool = False
    #: Rows with zero advantage (a group whose rewards are all equal) skip forward/backward:
    #: ``auto`` only when that is exact (dapo loss, beta 0, no entropy bonus), ``on`` always, ``off`` never.
    skip_zero_advantage: Literal["auto", "on", "off"] = "auto"
    #: Who runs the multi-turn rollouts: ``engine`` = the project's generation engine through TRL's
    #: ``rollout_func`` (each rollout's KV kept across turns, a group's prompt prefilled once, finished
    #: rollouts leave the batch; components.training.rl.rollouts), ``trl`` = TRL's own tool loop
    #: (re-encodes the conversation every turn). Same tokens, masks and rewards (tested); ``use_vllm``
    #: always uses TRL's loop.
    rollouts: Literal["engine", "trl"] = "engine"
    #: Rollouts decoded together by the engine (a CPU is busy from ~8; a GPU wants more).
    rollout_batch_size: PositiveInt = 16
    #: What the engine decodes rollouts in: ``autocast`` = the training forward's mixed precision
    #: (TRL's loop does), ``weights`` = the weights' own dtype (fp32), ``bf16`` = a bf16 copy of the
    #: weights refreshed every generation round (the dtype the bf16 training forward computes in).
    #: ``auto``: on a GPU ``autocast``; on a CPU ``bf16`` when training runs bf16 autocast, else
    #: ``weights``. Why not autocast on a CPU: it casts every weight at every decoding step, and a
    #: decoding step there is bound by reading the weights (measured ~2x slower than fp32 weights).
    rollout_precision: Literal["auto", "autocast", "weights", "bf16"] = "auto"
    #: Log ``rl/kl_to_start`` per step: how far the policy moved from the model RL started from, on the
    #: step's own rollouts (a frozen copy scores them; ~one forward of the rollouts). Engine rollouts only.
    kl_to_start: bool = True

    @field_validator("skip_zero_advantage", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: object) -> object:
        """YAML 1.1 reads a bare ``on``/``off`` as a boolean; take it as the word the user wrote."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    seed: int = 0


def grpo_group_problem(rl: RlParams, processes: int, processes_key: str) -> str | None:
    """Why ``rl``'s batch cannot hold whole GRPO groups on ``processes`` processes, or ``None`` when it can.

    One optimizer step generates ``batch_size x grad_accum x processes`` completions
    (TRL's generation batch), ``num_generations`` per prompt; TRL refuses a batch that
    splits a group. ``Params`` applies this at load time with
    ``orchestration.num_processes``; the RL stage applies it again only when it runs
    under another process count than that (a hand-made ``accelerate launch``).
    ``processes_key`` names where the process count came from, for the message.
    """
    completions = rl.batch_size * rl.grad_accum * processes
    if completions % rl.num_generations == 0:
        return None
    return (
        f"rl.batch_size x rl.grad_accum x {processes_key} ({rl.batch_size} x {rl.grad_accum} x {processes} = "
        f"{completions}) completions are generated per optimizer step and must be a multiple of "
        f"rl.num_generations ({rl.num_generations}), so every prompt gets a full group; "
        f"e.g. --set rl.batch_size={rl.num_generations}"
    )


class EvalParams(_Section):
    """Evaluation suites and generation budget (stage 5).

    ``stop_repeated_calls`` and ``max_consecutive_errors`` end a failing episode
    before ``max_turns`` (``components.tools.episode.EarlyStop``): a call equal
    to the previous one with the same result, or this many turns in a row whose
    calls all failed (``null`` = never). Such episodes count as failed, with the
    reason ``repeated_call`` / ``error_run``.
    """

    suites: list[str] = Field(
        default_factory=lambda: ["arith", "units", "calendar", "store", "bfcl:simple_python", "bfcl:multiple"]
    )
    limit: PositiveInt | None = 50
    #: Items of one suite where it differs from ``limit`` (e.g. ``{arith: 100, units: 30}``): a learning
    #: claim needs many in-domain items, while an OOD pack a small model fails at costs turns, not signal.
    limits: dict[str, PositiveInt] = Field(default_factory=dict)
    batch_size: PositiveInt = 8
    max_new_tokens: PositiveInt = 192
    #: Weights' dtype for decoding during evaluation; ``null`` = ``models.dtype``. Which is faster
    #: depends on the CPU (``benchmarks/cpu_cost.py`` times both); greedy outputs, and so scores, can
    #: differ slightly between dtypes, so compare models evaluated with the same one.
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    max_turns: PositiveInt = 5
    stop_repeated_calls: bool = True
    max_consecutive_errors: PositiveInt | None = 2
    bootstrap_samples: PositiveInt = 1000
    seed: int = 0

    def suite_limit(self, suite: str) -> int | None:
        """Items evaluated of ``suite``: its entry in ``limits``, else ``limit`` (``None`` = all)."""
        return self.limits.get(suite, self.limit)


#: The domains a challenger is compared with its base model on (``registry.beat_base``).
BASE_DOMAINS: tuple[Literal["in_domain", "ood"], ...] = ("in_domain", "ood")


class RegistryParams(_Section):
    """Registered-model name and the promotion gate (stage 6)."""

    model_name: str = "mentor-student"
    # A negative margin would promote a model that is *worse* out of domain than the champion.
    ood_margin: float = Field(default=0.0, ge=0.0)
    in_domain_tolerance: float = Field(default=0.02, ge=0.0)
    confidence: Literal["paired_bootstrap", "non_overlapping", "none"] = "paired_bootstrap"
    arm: str = "mentor"
    #: Domains on which a challenger must also beat the base model it was trained from (same confidence
    #: rule, margin 0): without it the first model is promoted for being first, whatever it learned.
    #: ``[]`` switches the check off.
    beat_base: list[Literal["in_domain", "ood"]] = Field(default_factory=lambda: list(BASE_DOMAINS))


def default_stage_timeouts_s() -> dict[str, float]:
    """Each stage's default wall-clock limit, from its ``timeout_s`` in the stage table (the one place it is written)."""
    return {name: spec.timeout_s for name, spec in STAGES.items()}


def gpu_stage_names() -> list[str]:
    """The stages that may run on the GPU pool (``gpu=True`` in the stage table), in pipeline order."""
    return [name for name, spec in STAGES.items() if spec.gpu]


class OrchestrationParams(_Section):
    """Tracking and orchestration endpoints; ``None`` means the embedded default."""

    #: ``None``: SQLite under ``project.state_dir``; ``MLFLOW_TRACKING_URI`` wins.
    tracking_uri: str | None = None
    experiment: str = "mentor-pipeline"
    #: A Prefect work pool name: the ``gpu_stages`` run there; ``None`` runs everything in the flow's process.
    gpu_pool: str | None = None
    #: Stages (by their names in ``components.stages``, those with ``gpu=True``) sent to ``gpu_pool``.
    gpu_stages: list[str] = Field(default_factory=gpu_stage_names)
    task_retries: int = Field(default=2, ge=0)
    retry_delay_s: float = Field(default=5.0, ge=0.0)
    #: Wall-clock limit per stage task (one RL arm each), so a hung job fails instead of waiting forever: the
    #: guardrails of a schedule nobody watches (README, "Scheduled retraining"). Keyed by stage table name;
    #: a partial table (``--set orchestration.stage_timeouts_s.models=2``) keeps the other stages' defaults.
    stage_timeouts_s: dict[str, PositiveFloat] = Field(default_factory=default_stage_timeouts_s)
    #: Flow runs of the scheduled deployment that may run at once (they share outputs/<profile> and the aliases).
    concurrency_limit: PositiveInt = 1
    #: What a deployment run does when the limit is reached: wait its turn, or be cancelled.
    collision_strategy: Literal["enqueue", "cancel_new"] = "enqueue"
    #: POSTed a JSON message when a flow run fails or crashes; ``MENTOR_FAILURE_WEBHOOK_URL`` wins (keep
    #: a URL that embeds a token in that variable, e.g. through the deployment's job variables, not here).
    failure_webhook_url: str | None = None
    #: Where Prefect keeps task results (the stage summaries its cache hits return): ``None`` = the
    #: worker's PREFECT_HOME (lost with the container); ``s3://bucket/prefix`` = the S3/MinIO store in infra,
    #: reached with the AWS_* variables and AWS_ENDPOINT_URL_S3 (or MLFLOW_S3_ENDPOINT_URL) for MinIO.
    result_storage: str | None = None

    @field_validator("gpu_stages", mode="before")
    @classmethod
    def _gpu_stage_aliases(cls, value: object) -> object:
        """Accept ``eval``, this list's name for ``evaluate`` before stages had one name each (old params files)."""
        if isinstance(value, list | tuple):
            return ["evaluate" if item == "eval" else item for item in value]
        return value

    @field_validator("gpu_stages")
    @classmethod
    def _gpu_stages_are_gpu_stages(cls, value: list[str]) -> list[str]:
        """Only a table stage with ``gpu=True`` can run on the pool: the others have no pool entry point."""
        allowed = gpu_stage_names()
        wrong = [name for name in value if name not in allowed]
        if wrong:
            raise ValueError(
                f"{', '.join(map(repr, wrong))} cannot run on the GPU pool; "
                f"stages that can (gpu=True in components/stages.py): {', '.join(allowed)}"
            )
        return value

    @field_validator("stage_timeouts_s")
    @classmethod
    def _timeouts_over_the_defaults(cls, value: dict[str, float]) -> dict[str, float]:
        """Only table stages, each one's limit over its default: raising one limit must not drop the others.

        ``--set orchestration.stage_timeouts_s.models=2`` used to replace the whole table, leaving
        every other stage (a 12 h RL arm included) without a guardrail. A misspelt name is rejected,
        since it would otherwise be a limit nothing reads.
        """
        unknown = [name for name in value if name not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage {', '.join(map(repr, unknown))}; stages: {', '.join(STAGES)}")
        return {**default_stage_timeouts_s(), **value}

    @field_validator("result_storage")
    @classmethod
    def _result_storage_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("s3://", "file://", "/")):
            raise ValueError(f"orchestration.result_storage must be s3://bucket/prefix or a local path, got {value!r}")
        return value

    #: Processes (one per GPU) the sft and rl stages run on, through ``accelerate launch`` when > 1 (DDP;
    #: ``accelerate_config`` for DeepSpeed ZeRO-2). The global batch is the per-device batch times this.
    num_processes: PositiveInt = 1
    #: An accelerate config file (e.g. ``infra/accelerate/zero2.yaml``); ``None``: plain DDP on this node.
    accelerate_config: str | None = None
    #: RL arms (and their evaluations) run at the same time, each in its own process on its own device(s)
    #: or pool slot; 1 runs them one after another in the flow's process.
    max_parallel_arms: PositiveInt = 1


class StudyParams(_Section):
    """``mentor study``: every arm of ``arms`` from the same SFT model, once per seed of ``seeds``.

    Each seed's RL runs get their own folders (``rl/<arm>-seed<N>``; the first seed keeps
    ``rl/<arm>``, so a finished ``mentor run --compare`` is the study's first seed), every run is
    evaluated on the same held-out items, and the report pools each arm's seeds. Arms in
    ``single_seed_arms`` run at the first seed only (what a budget that cannot afford them twice drops).
    """

    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=1)
    arms: list[RewardMode] = Field(default_factory=lambda: list(DEFAULT_COMPARE_ARMS), min_length=1)
    single_seed_arms: list[RewardMode] = Field(default_factory=list)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value) or min(value) < 0:
            raise ValueError(f"study.seeds must be distinct non-negative integers, got {value}")
        return value


class Params(_Section):
    """The whole effective configuration after a profile and overrides."""

    profile: str = "base"
    project: ProjectParams = ProjectParams()
    models: ModelsParams = ModelsParams()
    teacher: TeacherParams = TeacherParams()
    tasks: TasksParams = TasksParams()
    validation: ValidationParams = ValidationParams()
    sft: SftParams = SftParams()
    rl: RlParams = RlParams()
    eval: EvalParams = EvalParams()
    registry: RegistryParams = RegistryParams()
    orchestration: OrchestrationParams = OrchestrationParams()
    study: StudyParams = StudyParams()

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Params:
        """Rules between keys (often of different sections), all reported at once.

        Found by a stage, they would stop a run after earlier stages spent minutes or
        hours; here ``mentor params show`` and every entry point refuse them while loading.
        """
        problems = [
            problem
            for problem in (
                _rl_levels_problem(self),
                grpo_group_problem(self.rl, self.orchestration.num_processes, "orchestration.num_processes"),
                _seeds_problem(self.tasks),
                _sft_micro_batch_problem(self.sft),
                _sft_compute_weights_problem(self),
                _eval_limits_problem(self),
            )
            if problem
        ]
        if problems:
            raise ValueError("\n  ".join(problems))
        return self


def _rl_levels_problem(params: Params) -> str | None:
    """``rl.difficulties`` may only name levels the teacher data has (``tasks.difficulties``)."""
    levels = params.rl.difficulties
    missing = sorted(set(levels) - set(params.tasks.difficulties)) if levels is not None else []
    if not missing:
        return None
    return (
        f"rl.difficulties: level(s) {missing} are not in tasks.difficulties {params.tasks.difficulties}, "
        "so the teacher data has no such rows; choose from tasks.difficulties or null for all levels"
    )


def _eval_limits_problem(params: Params) -> str | None:
    """``eval.limits`` names evaluated suites only, and a pack's limit fits the tasks the teacher stage writes."""
    unknown = sorted(set(params.eval.limits) - set(params.eval.suites))
    if unknown:
        return (
            f"eval.limits names suite(s) {unknown} that eval.suites {params.eval.suites} does not evaluate; "
            "remove them or add them to eval.suites"
        )
    over = {s: n for s, n in params.eval.limits.items() if ":" not in s and n > params.tasks.n_eval}
    if over:
        return (
            f"eval.limits {over} asks for more items than the {params.tasks.n_eval} held-out tasks per pack the "
            f"teacher stage writes (tasks.n_eval); raise tasks.n_eval to {max(over.values())} or lower the limit"
        )
    return None


def _sft_micro_batch_problem(sft: SftParams) -> str | None:
    """A micro-batch that does not divide the batch would change how many rows one optimizer step sees."""
    if sft.micro_batch_size is None or sft.batch_size % sft.micro_batch_size == 0:
        return None
    return (
        f"sft.micro_batch_size {sft.micro_batch_size} does not divide sft.batch_size {sft.batch_size}; "
        f"choose a divisor of it (e.g. --set sft.micro_batch_size=1) or null for the device's default"
    )


def _sft_compute_weights_problem(params: Params) -> str | None:
    """``sft.compute_weights=bf16`` needs bf16 training, fp32 weights to keep as masters, and no frozen base."""
    if params.sft.compute_weights != "bf16":
        return None
    if params.models.train_precision == "fp32":
        return (
            "sft.compute_weights=bf16 computes in bf16 but models.train_precision is fp32; "
            "set models.train_precision to auto or bf16, or sft.compute_weights to auto"
        )
    if params.models.dtype != "float32":
        return (
            f"sft.compute_weights=bf16 keeps fp32 master weights, but models.dtype is {params.models.dtype}; "
            "set models.dtype=float32 or sft.compute_weights=auto"
        )
    if params.sft.use_lora:
        return (
            "sft.compute_weights=bf16 would round LoRA's frozen base weights to bf16 in the saved model; "
            "set sft.compute_weights=auto (autocast for LoRA) or sft.use_lora=false"
        )
    return None


def _seeds_problem(tasks: TasksParams) -> str | None:
    """Training and evaluation tasks are generated from these seeds; equal seeds make the held-out set trained on."""
    if tasks.seed != tasks.eval_seed:
        return None
    return (
        f"tasks.seed and tasks.eval_seed are both {tasks.seed}: the evaluation tasks would be training tasks; "
        f"give them different values, e.g. --set tasks.eval_seed={tasks.seed + 10_000}"
    )
