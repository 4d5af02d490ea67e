"""One pydantic model per ``params.yaml`` section: a wrong setting fails before any work is done.

``pianoeval.io.load_params(section)`` validates the section it returns against ``SCHEMAS[section]``, so
every stage is covered without code of its own. Running a stage (``python -m pianoeval.stages.<stage>``)
validates that stage's section first, before the stage module imports torch or reads any data, with
input paths also checked to exist (``pianoeval.runtime``). ``python -m pianoeval.params_schema``
validates the whole file (``make demo`` runs it before ``dvc repro``). A bad value fails within a
second, naming the key, the value and what is allowed::

    params.yaml: 1 invalid setting:
      train_quality.default_split = 'pianst': must be 'pianist', 'segment' or 'piece'

Rules: keys are strict (``extra="forbid"``: a misspelt key is an error that suggests the near one);
types are strict (``"5"`` is no int, ``true`` no number; an int is accepted where a float is
expected); every key is required, because params.yaml is the one place settings live and DVC only
tracks what it contains; a key that may be empty is ``X | None``.

How to extend
-------------
* **a key**: one line in its section's class below, e.g. ``n_fft: PositiveInt``. Cross-key rules
  (``fmin < fmax``) go in a ``@model_validator(mode="after")`` of that class.
* **a section**: one class ``class MyStageParams(Section)`` and one line in :data:`SCHEMAS`
  (``tests/test_params_schema.py`` fails while a section of params.yaml has no schema).
* **an extractor**: its name in :data:`EXTRACTORS` (a test keeps it equal to the registry) and, if it
  takes parameters, one ``Section`` class and one optional field of ``ExtractParams``.
* **paths**: ``InputFile`` / ``InputDir`` for what the stage reads (checked to exist when the stage
  starts), ``OutputPath`` for what it writes.

Only pydantic, PyYAML and the standard library are imported here: validation must stay fast.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError,
                      ValidationInfo, model_validator)

from .dimensions import CATEGORIES

SPLITS = ("pianist", "segment", "piece")  # = pianoeval.labels.SPLITS (that module imports pandas)
# backends an `extract.<name>` section may name (tests keep this equal to pianoeval.extractors.BACKENDS)
EXTRACTORS = ("logmel", "basic_pitch", "concat", "muq", "hubert", "wav2vec2", "mert", "ast")


class ParamsError(ValueError):
    """Invalid params.yaml settings; the message lists every problem as ``section.key = value: rule``."""


# --------------------------------------------------------------------------- field types
def _input_path(kind: str):
    def check(value: str, info: ValidationInfo) -> str:
        if (info.context or {}).get("check_paths"):
            p = Path(value)
            ok = p.is_file() if kind == "file" else p.is_dir()
            if not ok:
                if p.exists():
                    what = "is a directory, expected a file" if kind == "file" else "is a file, expected a directory"
                else:
                    what = "no such file" if kind == "file" else "no such directory"
                raise ValueError(f"{what} (an input of this stage: fix the path or run the stage that makes it)")
        return value
    return check


def _ordered_range(value: list[float]) -> list[float]:
    if value[0] > value[1]:
        raise ValueError("must be [low, high] with low <= high")
    return value


def _soundfont(value: str, info: ValidationInfo) -> str:
    if value == "pretty_midi":
        return value
    if Path(value).suffix.lower() not in (".sf2", ".sf3"):
        raise ValueError("must be 'pretty_midi' or a path to a .sf2/.sf3 soundfont")
    if (info.context or {}).get("check_paths") and not Path(value).expanduser().is_file():
        raise ValueError("no such soundfont file")
    return value


PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
OpenFraction = Annotated[float, Field(gt=0, lt=1)]  # strictly between 0 and 1
Probability = Annotated[float, Field(ge=0, le=1)]
Seed = NonNegativeInt
Dbfs = Annotated[float, Field(le=0)]
FolderCount = Annotated[int, Field(ge=2)]  # cross-validation folds
SecondsRange = Annotated[list[NonNegativeFloat], Field(min_length=2, max_length=2), AfterValidator(_ordered_range)]
InputFile = Annotated[str, Field(min_length=1), AfterValidator(_input_path("file"))]
InputDir = Annotated[str, Field(min_length=1), AfterValidator(_input_path("dir"))]
OutputPath = Annotated[str, Field(min_length=1)]
Split = Literal[SPLITS]
OnError = Literal["fail", "skip"]


class Section(BaseModel):
    """Base of every section schema: unknown keys and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --------------------------------------------------------------------------- T1 stages
class LabelsParams(Section):
    source_dir: InputDir
    out_dir: OutputPath
    pieces: list[str]
    n_folds: FolderCount
    seed: Seed


class RenderParams(Section):
    labels: InputFile
    midi_dir: InputDir
    out_dir: OutputPath
    soundfont: Annotated[str, AfterValidator(_soundfont)]
    sample_rate: Annotated[int, Field(ge=8000, le=192000)]
    gain: Annotated[float, Field(gt=0, le=10)]  # FluidSynth's synth.gain range
    peak_target: Annotated[float, Field(gt=0, le=1)]
    tail_seconds: NonNegativeFloat
    effects: bool  # FluidSynth's reverb and chorus
    on_bad_midi: OnError
    workers: NonNegativeInt  # 0 = all cores


class LogMelParams(Section):
    backend: Literal["logmel"] = "logmel"
    sample_rate: Annotated[int, Field(ge=8000)]
    frame_rate: PositiveFloat
    n_fft: Annotated[int, Field(ge=16)]
    n_mels: PositiveInt
    fmin: NonNegativeFloat
    fmax: PositiveFloat
    deltas: bool

    @model_validator(mode="after")
    def _consistent(self) -> LogMelParams:
        if not self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, fmax={self.fmax}, "
                             f"sample_rate={self.sample_rate}")
        hop = self.sample_rate / self.frame_rate
        if hop != int(hop):
            raise ValueError(f"sample_rate / frame_rate must be a whole number of samples, got {hop:g}")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels={self.n_mels} exceeds the {self.n_fft // 2 + 1} frequency bins of "
                             f"n_fft={self.n_fft}")
        return self


class BasicPitchParams(Section):
    backend: Literal["basic_pitch"] = "basic_pitch"
    outputs: Annotated[list[Literal["contour", "note", "onset"]], Field(min_length=1)]
    window_stride: PositiveInt  # run 1 of every k two-second windows
    batch_size: PositiveInt
    threads: NonNegativeInt     # 0 = one per core
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model_path: str | None = None  # None = the ONNX file shipped in the package


class ConcatParams(Section):
    backend: Literal["concat"]
    members: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=2)]
    frame_rate: PositiveFloat | None = None  # None = the first member's


# sections of extractors with their own schema; any other `extract.<name>` section is a mapping whose
# `backend` (default: the name) is one of EXTRACTORS, checked by that backend's constructor when loaded
EXTRACTOR_SECTIONS: dict[str, type[Section]] = {"logmel": LogMelParams, "basic_pitch": BasicPitchParams,
                                                "concat": ConcatParams}


class ExtractParams(Section):
    # extra keys are extractor sections (one per configured name, e.g. `mert_95m: {backend: mert, ...}`)
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    audio: InputDir
    out_dir: OutputPath
    extractor: Annotated[str, Field(min_length=1)]  # the default: the store every later stage reads
    extractors: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    dtype: Literal["float16", "float32"]
    loudness_lufs: Annotated[float, Field(ge=-70, le=0)] | None  # BS.1770 target before embedding; null = off
    engine: Literal["local", "ray"]
    ray_address: Annotated[str, Field(pattern=r"^(local|auto|ray://[^\s:]+:\d+)$")]
    ray_workers: PositiveInt
    ray_shard_size: PositiveInt
    ray_gpus_per_worker: NonNegativeFloat
    logmel: LogMelParams | None = None
    basic_pitch: BasicPitchParams | None = None

    @model_validator(mode="after")
    def _extractors_configured(self) -> ExtractParams:
        if self.extractor not in self.extractors:
            raise ValueError(f"extractor '{self.extractor}' (the default) must be one of extractors {self.extractors}")
        sections = {"logmel": self.logmel, "basic_pitch": self.basic_pitch, **(self.__pydantic_extra__ or {})}
        problems = []
        for name, sec in sections.items():
            if sec is None or isinstance(sec, Section):
                continue
            if not isinstance(sec, dict):
                problems.append(f"{name}: must be a mapping of extractor params, got {sec!r}")
                continue
            backend = sec.get("backend", name)
            if backend not in EXTRACTORS:
                near = difflib.get_close_matches(str(backend), EXTRACTORS, n=1)
                problems.append(f"{name}.backend = {backend!r}: unknown backend"
                                + (f" (did you mean '{near[0]}'?)" if near else "") + f"; have: {', '.join(EXTRACTORS)}")
                continue
            schema = EXTRACTOR_SECTIONS.get(backend)
            if schema is not None:
                try:
                    schema.model_validate(sec)
                except ValidationError as e:
                    problems += [_describe(name, schema, err) for err in e.errors()]
            if backend == "concat":
                problems += [f"{name}.members: '{m}' has no section and is no backend" for m in sec.get("members", [])
                             if m not in sections and m not in EXTRACTORS]
        for name in self.extractors:
            if name not in sections and name not in EXTRACTORS:
                problems.append(f"extractors: '{name}' has no `extract.{name}` section and is no backend name")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class CompareExtractorsParams(Section):
    labels: InputFile
    splits: InputFile
    reference: Annotated[str, Field(min_length=1)]  # a row name: every row's R² difference is against it
    n_boot: PositiveInt
    seed: Seed


class MLPParams(Section):
    hidden: PositiveInt
    n_hidden_layers: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    batch_size: PositiveInt
    max_epochs: PositiveInt
    patience: PositiveInt
    grad_clip: PositiveFloat


class RidgeParams(Section):
    alphas: Annotated[list[PositiveFloat], Field(min_length=1)]
    inner_folds: FolderCount


class TrainQualityParams(Section):
    labels: InputFile
    splits: InputFile
    checkpoints: OutputPath
    oof: OutputPath
    default_split: Split
    val_fraction: OpenFraction
    seed: Seed
    n_seeds: PositiveInt
    workers: PositiveInt  # processes training outer folds in parallel (1 = in the stage's process)
    blend_mlp_weight: Probability
    n_perm: PositiveInt  # sign flips per test against the passage-mean baseline
    mlp: MLPParams
    ridge: RidgeParams


# --------------------------------------------------------------------------- masterclass stages
Category = Literal[tuple(CATEGORIES)]


class WeightedTeacher(Section):
    weights: dict[Category, NonNegativeFloat]
    threshold: float
    noise_sd: NonNegativeFloat

    @model_validator(mode="after")
    def _positive_sum(self) -> WeightedTeacher:
        if not sum(self.weights.values()) > 0:
            raise ValueError("weights must have a positive sum")
        return self


class RandomTeacher(Section):
    stop_probability: Probability


Teacher = Annotated[Annotated[RandomTeacher, Tag("random teacher")] | Annotated[WeightedTeacher, Tag("teacher")],
                    Discriminator(lambda v: "random teacher" if isinstance(v, dict) and "stop_probability" in v
                                  else "teacher")]
TeacherName = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,40}$")]


class MasterclassSimulateParams(Section):
    labels: InputFile
    audio: InputDir
    out_dir: OutputPath
    seed: Seed
    sessions_per_teacher: PositiveInt
    min_segments: PositiveInt
    max_segments: PositiveInt
    max_play_seconds: PositiveFloat
    pause_seconds: NonNegativeFloat
    feedback_seconds: SecondsRange
    lead_seconds: NonNegativeFloat
    stop_delay_seconds: SecondsRange
    window_jitter_seconds: NonNegativeFloat
    feedback_overlap_seconds: SecondsRange
    speech_rms_dbfs: Dbfs
    noise_floor_dbfs: Dbfs
    teachers: Annotated[dict[TeacherName, Teacher], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> MasterclassSimulateParams:
        if self.min_segments > self.max_segments:
            raise ValueError(f"min_segments={self.min_segments} > max_segments={self.max_segments}")
        if self.feedback_seconds[0] <= 0:
            raise ValueError(f"feedback_seconds must start above 0, got {self.feedback_seconds}")
        return self


class MasterclassSegmentsParams(Section):
    input_dir: InputDir
    out: OutputPath
    on_error: OnError
    min_continue_duration: PositiveFloat
    min_stop_duration: PositiveFloat
    seed: Seed


class MasterclassEmbedParams(Section):
    segments: InputFile
    out: OutputPath


class MasterclassScoresParams(Section):
    segments: InputFile
    embeddings: InputFile
    checkpoints: InputDir
    out: OutputPath
    labels: InputFile  # the oracle's true ratings
    oracle_out: OutputPath


class MasterclassClassifyParams(Section):
    segments: InputFile
    embeddings: InputFile
    scores: InputFile
    oracle: InputFile
    predictions: OutputPath
    C: PositiveFloat
    n_components: PositiveInt
    spline_knots: Annotated[int, Field(ge=2)]
    cv_folds: NonNegativeInt  # 0 = one fold per student
    min_calibration_class: PositiveInt
    n_perm: PositiveInt
    level: OpenFraction
    negative_control_teacher: TeacherName | None
    n_jobs: PositiveInt
    seed: Seed


# --------------------------------------------------------------------------- downloads (pianoeval.acquire)
class DownloadParams(Section):
    """yt-dlp settings shared by every downloading stage; ``pianoeval.acquire.FetchOptions`` is this class.
    The one section type with defaults: library callers may give only what they change."""

    format: Annotated[str, Field(min_length=1)] = "bestaudio/best"
    retries: NonNegativeInt = 10                 # HTTP retries of one download
    fragment_retries: NonNegativeInt = 10        # per fragment of DASH/HLS downloads
    extractor_retries: NonNegativeInt = 3        # retries of the metadata extraction on known transient errors
    ratelimit: PositiveInt | None = None         # bytes per second; None = unlimited
    sleep_interval: NonNegativeFloat = 0.0       # seconds before each download (lower bound when max is set)
    max_sleep_interval: NonNegativeFloat | None = None  # random sleep in [sleep_interval, max] before each download
    sleep_interval_requests: NonNegativeFloat = 0.0     # seconds between the requests of one extraction
    socket_timeout: PositiveFloat = 30.0
    cookies_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "PIANOEVAL_COOKIES_FILE"  # env var holding a cookies.txt path

    @model_validator(mode="after")
    def _sleep_range(self) -> DownloadParams:
        if self.max_sleep_interval is not None and self.max_sleep_interval < self.sleep_interval:
            raise ValueError(f"max_sleep_interval={self.max_sleep_interval} < sleep_interval={self.sleep_interval}")
        return self


class MasterclassFetchParams(Section):
    enabled: bool
    moments: InputFile
    manifest: InputFile
    out_dir: OutputPath
    on_failure: OnError
    download: DownloadParams


# --------------------------------------------------------------------------- T2 / T3 tiers (ASAP)
class TierMatch(Section):
    ngram: Annotated[int, Field(ge=2)]
    min_fraction: OpenFraction


class T2Selection(Section):
    source: Literal["asap", "manifest"]
    manifest: InputFile
    recordings_dir: InputDir
    competition: Annotated[str, Field(min_length=1)]
    licence: Annotated[str, Field(min_length=1)]
    rounds: Annotated[list[Annotated[int, Field(ge=1, le=3)]], Field(min_length=1)]
    performances_per_performer_year: PositiveInt
    max_performer_years: PositiveInt | None
    seed: Seed
    asap_rounds: dict[Annotated[int, Field(ge=1, le=3)], Annotated[str, Field(min_length=1)]]
    placement_codes: dict[Annotated[str, Field(min_length=1)], PositiveInt]

    @model_validator(mode="after")
    def _rounds_have_codes(self) -> T2Selection:
        missing = [r for r in self.rounds if r not in self.asap_rounds]
        if missing:
            raise ValueError(f"rounds {missing} have no entry in asap_rounds")
        unknown = sorted({s for s in self.asap_rounds.values() if s not in self.placement_codes})
        if unknown:
            raise ValueError(f"asap_rounds stages {unknown} have no placement code")
        return self


class T3Selection(Section):
    min_performers: Annotated[int, Field(ge=2)]
    n_folders: PositiveInt
    performers_per_folder: Annotated[int, Field(ge=2)]
    seed: Seed


class TiersSelectParams(Section):
    asap_root: InputDir
    percepiano_labels: InputFile
    percepiano_midi: InputDir
    out_dir: OutputPath
    match: TierMatch
    t2: T2Selection
    t3: T3Selection


class T2FetchParams(Section):
    enabled: bool
    out_dir: OutputPath
    on_failure: OnError
    download: DownloadParams


class TierSegmentsParams(Section):
    out: OutputPath
    pairs: OutputPath
    target_seconds: PositiveFloat
    windows_per_performance: PositiveInt
    pre_roll: NonNegativeFloat


class TierAudioParams(Section):
    segments: InputFile
    out_dir: OutputPath


class TierEmbedParams(Section):
    audio: InputDir
    out: OutputPath


class T2ScoresParams(Section):
    segments: InputFile
    pairs: InputFile
    embeddings: InputFile
    checkpoints: InputDir
    out: OutputPath


class T3EvalParams(Section):
    segments: InputFile
    embeddings: InputFile
    checkpoints: InputDir
    scores: OutputPath
    n_boot: PositiveInt
    n_perm: PositiveInt
    seed: Seed


class AuditCompetition(Section):
    table: InputFile
    n_boot: PositiveInt
    n_perm: PositiveInt
    seed: Seed
    exclude_percepiano_overlap: bool


# --------------------------------------------------------------------------- T4 unlabeled audio and robustness
Interval = Annotated[list[float], Field(min_length=2, max_length=2), AfterValidator(_ordered_range)]
# augmentation -> severity -> parameter -> [lo, hi]; names and physical bounds are checked against
# pianoeval.t4.augment (AUGMENTATIONS, BOUNDS) by its parse_grid when the stage starts.
AugmentationGrid = Annotated[dict[str, Annotated[dict[str, dict[str, Interval]], Field(min_length=1)]],
                             Field(min_length=1)]


class T4RoomsParams(Section):
    out: OutputPath
    rt60_targets: Annotated[list[Annotated[float, Field(ge=0.1, le=3.0)]], Field(min_length=1)]
    tolerance: OpenFraction
    seed: Seed


class T4FetchParams(Section):
    enabled: bool
    manifest: InputFile
    out_dir: OutputPath
    on_failure: OnError
    download: DownloadParams


class T4PoolParams(Section):
    source: Literal["asap", "fetched"]
    asap_dir: InputDir
    exclude: InputFile
    out_dir: OutputPath
    clips: OutputPath
    n_clips: PositiveInt
    clips_per_performance: PositiveInt
    clip_seconds: PositiveFloat
    seed: Seed


class T4AugmentParams(Section):
    pool: InputDir
    clips: InputFile
    rooms: InputFile
    out_dir: OutputPath
    pairs: OutputPath
    pairs_per_clip: NonNegativeInt  # 0 = every clip in every condition
    seed: Seed
    workers: NonNegativeInt
    augmentations: AugmentationGrid


class T4EmbedParams(Section):
    clean_audio: InputDir
    augmented_audio: InputDir
    clean_out: OutputPath
    augmented_out: OutputPath


class RobustnessPercePiano(Section):
    n_passages: PositiveInt
    min_performances: Annotated[int, Field(ge=2)]
    max_minutes: PositiveFloat
    seed: Seed


class RobustnessTargets(Section):
    pearson_r_min: Annotated[float, Field(gt=-1, le=1)]
    ranking_drop_max: OpenFraction


class RobustnessParams(Section):
    t4_clean: InputFile
    t4_augmented: InputFile
    pairs: InputFile
    checkpoints: InputDir
    labels: InputFile
    oof: InputFile
    percepiano_audio: InputDir
    rooms: InputFile
    predictions: OutputPath
    percepiano: RobustnessPercePiano
    seed: Seed
    n_boot: PositiveInt
    workers: NonNegativeInt
    targets: RobustnessTargets


# --------------------------------------------------------------------------- multi-task model
AuxTerm = Literal["t2", "t3", "t4"]


class MultitaskWeights(Section):
    t1: PositiveFloat      # the 19-dimension head and early stopping rest on T1
    t2: NonNegativeFloat   # 0 switches a term off in every variant
    t3: NonNegativeFloat
    t4: NonNegativeFloat


class MultitaskModel(Section):
    hidden: PositiveInt
    n_hidden_layers: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]
    projection_dim: PositiveInt
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    batch_size: PositiveInt
    max_epochs: PositiveInt
    patience: PositiveInt
    grad_clip: PositiveFloat
    t2_pairs_per_step: PositiveInt
    t2_temperature: PositiveFloat
    t3_temperature: PositiveFloat
    t4_pairs_per_step: PositiveInt


def _device(value: str) -> str:
    if value != "cpu" and value != "cuda" and not (value.startswith("cuda:") and value[5:].isdigit()):
        raise ValueError("must be 'cpu', 'cuda' or 'cuda:N'")
    return value


class TrainMultitaskParams(Section):
    labels: InputFile
    splits: InputFile
    t2_segments: InputFile
    t2_pairs: InputFile
    t2_embeddings: InputFile
    t3_segments: InputFile
    t3_embeddings: InputFile
    t4_pairs: InputFile
    t4_clean: InputFile
    t4_augmented: InputFile
    overlap: InputFile
    checkpoints: OutputPath
    oof: OutputPath
    live_dir: OutputPath
    device: Annotated[str, AfterValidator(_device)]
    workers: NonNegativeInt  # 0 = all cores
    seed: Seed
    val_fraction: OpenFraction
    reference: Annotated[str, Field(min_length=1)]
    seed_control: bool
    variants: Annotated[dict[str, list[AuxTerm]], Field(min_length=2)]
    weights: MultitaskWeights
    model: MultitaskModel
    n_boot: PositiveInt
    n_perm: PositiveInt

    @model_validator(mode="after")
    def _reference_is_t1_only(self):
        if self.reference not in self.variants:
            raise ValueError(f"reference '{self.reference}' is not one of the variants {list(self.variants)}")
        if self.variants[self.reference]:
            raise ValueError(f"reference '{self.reference}' must be the T1-only variant (an empty list)")
        if self.seed_control and "t1_only_reseeded" in self.variants:
            raise ValueError("variant name 't1_only_reseeded' is reserved for the seed control")
        return self


# --------------------------------------------------------------------------- audit
class AuditMasterclassInputs(Section):
    segments: InputFile
    scores: InputFile
    embeddings: InputFile


class AuditCorrelation(Section):
    top_k: PositiveInt
    high: OpenFraction
    moderate: OpenFraction

    @model_validator(mode="after")
    def _ordered(self) -> AuditCorrelation:
        if self.moderate >= self.high:
            raise ValueError(f"need moderate < high, got moderate={self.moderate}, high={self.high}")
        return self


class AuditFactors(Section):
    n_iter: PositiveInt
    percentile: Annotated[float, Field(gt=0, lt=100)]
    loading_threshold: OpenFraction


class AuditDistributions(Section):
    floor: OpenFraction
    ceiling: OpenFraction
    flag_fraction: OpenFraction


class AuditReliability(Section):
    n_splits: PositiveInt
    repeats: Literal["mean", "keep", "first"]
    min_mapping_r: Annotated[float, Field(ge=-1, le=1)]


class AuditRidge(Section):
    alphas: Annotated[list[PositiveFloat], Field(min_length=1)]
    inner_folds: FolderCount
    fixed_alpha: PositiveFloat


class AuditMLP(Section):
    hidden: PositiveInt
    n_components: PositiveInt
    epochs: PositiveInt
    lr: PositiveFloat
    batch_size: PositiveInt
    weight_decay: NonNegativeFloat
    patience: PositiveInt
    val_frac: OpenFraction


class AuditAttention(Section):
    frame_hop: PositiveInt
    hidden: PositiveInt
    epochs: PositiveInt
    lr: PositiveFloat
    batch_size: PositiveInt
    weight_decay: NonNegativeFloat
    patience: PositiveInt
    val_frac: OpenFraction


class AuditResiduals(Section):
    n_iter: PositiveInt


class AuditCCA(Section):
    n_pca: PositiveInt
    threshold: OpenFraction
    n_null: PositiveInt


class AuditDownstream(Section):
    C: PositiveFloat
    variants: Annotated[list[Literal["all", "duration_matched"]], Field(min_length=1)]
    n_extreme: PositiveInt
    cv_folds: NonNegativeInt
    n_perm: PositiveInt
    equivalence_margin: OpenFraction
    level: OpenFraction
    negative_control_teacher: TeacherName | None
    n_jobs: PositiveInt


class AuditParams(Section):
    labels: InputFile
    splits: InputFile
    annotations: InputFile
    masterclass: AuditMasterclassInputs
    competition: AuditCompetition | None  # T2 validation; null skips the section
    report: OutputPath
    markdown: OutputPath
    figures: OutputPath
    default_split: Split
    seed: Seed
    correlation: AuditCorrelation
    factors: AuditFactors
    distributions: AuditDistributions
    reliability: AuditReliability
    ridge: AuditRidge
    mlp: AuditMLP
    attention: AuditAttention
    residuals: AuditResiduals
    cca: AuditCCA
    downstream: AuditDownstream


# --------------------------------------------------------------------------- registry: one line per section
SCHEMAS: dict[str, type[Section]] = {
    "labels": LabelsParams,
    "render": RenderParams,
    "extract": ExtractParams,
    "compare_extractors": CompareExtractorsParams,
    "train_quality": TrainQualityParams,
    "masterclass_fetch": MasterclassFetchParams,
    "masterclass_simulate": MasterclassSimulateParams,
    "masterclass_segments": MasterclassSegmentsParams,
    "masterclass_embed": MasterclassEmbedParams,
    "masterclass_scores": MasterclassScoresParams,
    "masterclass_classify": MasterclassClassifyParams,
    "audit": AuditParams,
    "tiers_select": TiersSelectParams,
    "t2_fetch": T2FetchParams,
    "t2_segments": TierSegmentsParams,
    "t2_audio": TierAudioParams,
    "t2_embed": TierEmbedParams,
    "t2_scores": T2ScoresParams,
    "t3_segments": TierSegmentsParams,
    "t3_audio": TierAudioParams,
    "t3_embed": TierEmbedParams,
    "t3_eval": T3EvalParams,
    "t4_rooms": T4RoomsParams,
    "t4_fetch": T4FetchParams,
    "t4_pool": T4PoolParams,
    "t4_augment": T4AugmentParams,
    "t4_embed": T4EmbedParams,
    "robustness": RobustnessParams,
    "train_multitask": TrainMultitaskParams,
}


# --------------------------------------------------------------------------- validation
_TAGS = {"random teacher", "teacher"}  # discriminator tags pydantic puts into error locations


def validate_section(section: str, values: Any, *, source: str = "params.yaml", check_paths: bool = False) -> Any:
    """Validate one section's values; returns them unchanged, raises :class:`ParamsError` listing every
    problem. ``check_paths``: also require input paths to exist (done when the section's stage starts)."""
    schema = SCHEMAS.get(section)
    if schema is None:
        raise ParamsError(f"{source}: section '{section}' has no schema in pianoeval/params_schema.py "
                          "(add a Section class and a SCHEMAS line: see that module's docstring)")
    try:
        schema.model_validate(values, context={"check_paths": check_paths})
    except ValidationError as e:
        problems = [_describe(section, schema, err) for err in e.errors()]
        raise ParamsError(f"{source}: {len(problems)} invalid setting{'s' if len(problems) > 1 else ''}:\n  "
                          + "\n  ".join(problems)) from None
    return values


def validate_params(params: dict, *, source: str = "params.yaml", check_paths: bool = False) -> None:
    """Validate every section of a whole params.yaml mapping (all problems in one error)."""
    problems = []
    for section, values in params.items():
        try:
            validate_section(section, values, source=source, check_paths=check_paths)
        except ParamsError as e:
            problems += [line.strip() for line in str(e).splitlines()[1:]] or [str(e)]
    if problems:
        raise ParamsError(f"{source}: {len(problems)} invalid setting{'s' if len(problems) > 1 else ''}:\n  "
                          + "\n  ".join(problems))


def _describe(section: str, schema: type[BaseModel], err: dict) -> str:
    loc = [str(x) for x in err["loc"] if x not in _TAGS]
    key = section + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"] if x not in _TAGS)
    kind = err["type"]
    if kind == "missing":
        return f"{key}: required key missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(schema, loc[:-1])
        near = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return f"{key}: unknown key{hint}; allowed: {', '.join(allowed)}"
    value = err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    for subject in ("Input should", "String should", "List should", "Dictionary should"):
        msg = msg.replace(subject, "must")
    if "[key]" in loc:  # a mapping key with a disallowed name (e.g. a teacher weight's category)
        return f"{'.'.join([section, *loc[:loc.index('[key]') - 1]])}: key {_show(value)} {msg}"
    if kind == "value_error" and isinstance(value, dict):  # a rule across keys (model validator)
        return f"{key}: {msg}"
    if kind in ("float_type", "int_type") and isinstance(value, str):
        try:
            float(value)
            msg += " (YAML reads this as a string: write e.g. 1.0e-4, not 1e-4, and no quotes)"
        except ValueError:
            pass
    return f"{key} = {_show(value)}: {msg}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _allowed_keys(schema: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model at ``loc``; [] where that is not a model."""
    model: Any = schema
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside ``X``, ``X | None`` or ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m pianoeval.params_schema [params.yaml] [--check-paths]``: validate every section."""
    import yaml

    args = sys.argv[1:] if argv is None else argv
    check_paths = "--check-paths" in args
    files = [a for a in args if a != "--check-paths"] or ["params.yaml"]
    for path in files:
        with open(path) as fh:
            params = yaml.safe_load(fh) or {}
        try:
            validate_params(params, source=path, check_paths=check_paths)
        except ParamsError as e:
            print(e, file=sys.stderr)
            return 2
        print(f"{path}: {len(params)} sections valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
