"""The int8 dlib ResNet on other runtimes and ONNX Runtime session options, against today's session (issue 15).

Why: the int8 ResNet is ~43% of an ingest worker's CPU (2.25 ms per chip on one thread, 10 chips per
face), and issue 15 wants more ingest speed. Before changing the model, check whether the same model runs
faster with a different ONNX Runtime setting, another quantised form, or another runtime (OpenVINO), and
whether the descriptors stay those the shipped calibration of ``dlib_resnet_v1_int8`` was measured with.

Every candidate is timed in the same run as **today's session** (``runtime.onnx_session`` on the int8 QDQ
model, one intra-op thread: what each of an ingest's 2 workers runs), on the same real aligned chips, in
batches of 45 (an ingest chunk's chips of one side), runs interleaved, best of ``--repeats``; wall and CPU
time (the process's, so a runtime's own threads count) per chip. ``max|d|`` compares one batch's raw
descriptors with today's (max abs difference; 0 means the same to the bit), ``batch|d|`` every 5th chip of it
run alone with the same chip in the batch (0: a descriptor does not depend on the faces batched with it).

- ``speed``: the table above, for every candidate in ``--candidates`` (default all that import here);
- ``agree``: for ``--agree`` candidates, raw descriptors of every view (5 alignments x plain/mirrored) of the
  3,443 pairsDevTrain photos, cosine to today's and to the float model's per view (min / p1 / median, max abs
  difference);
- ``verify``: 10-fold verification on pairsDevTrain (2,200 pairs, the default recipe's 10 views) and the
  1:N check of ``bench.speed.int8`` with each ``--agree`` candidate's descriptors vs today's;
- ``isa``: OpenVINO's int8 model with oneDNN's instruction set capped (``ONEDNN_MAX_CPU_ISA``, one child
  process each): slower without VNNI means the default uses it; the descriptors' change is what a CPU without
  VNNI might give (as far as the cap emulates one);
- ``avx2``: today's session (int8, reduce_range int8, float; and OpenVINO's int8 where it imports) on a CPU
  without AVX-512 or VNNI, emulated by
  ``qemu-x86_64 -cpu Haswell`` (``apt-get install qemu-user``; ~2 s per chip, so ``--avx2-chips`` few), against
  the same chips here: does the model give the same descriptors on such CPUs.

OpenVINO candidates need ``openvino`` importable (``pip install --target /tmp/ov openvino``, then add the
folder to PYTHONPATH after ``src:.``; the project does not depend on it). Chips come from
``bench/int8_chips.py`` (kept outside the project: faces of real people); raw descriptors are cached beside
them; bench/out/embed_runtime.json gets aggregates only.

    PYTHONPATH=src:. python -m bench.int8_chips
    PYTHONPATH=src:.:/tmp/ov nice -n 5 python -m bench.speed.embed_runtime --repeats 5 [--what speed,agree,verify]
        [--candidates ort-today,ov-int8-latency,...] [--agree ov-int8-latency]
    # ONNX Runtime's OpenVINO execution provider: the onnxruntime-openvino build (its own onnxruntime) first
    PYTHONPATH=src:.:/tmp/ortov python -m bench.speed.embed_runtime --keep-models --candidates ort-openvino-ep
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import int8_chips
from bench.datasets import OUT, dev_pairs
from bench.speed.int8 import identification, recipe_vectors, unit, verification
from facesearch.models.convert.dlib_format import read_dlib_network
from facesearch.models.convert.dlib_resnet_onnx import INPUT_NAME, build_resnet_onnx
from facesearch.models.convert.resnet_int8 import quantise_resnet, shipped_ranges
from facesearch.models.runtime import CPU_PROVIDERS, NO_SPINNING, onnx_session
from facesearch.models.weights import DLIB_RESNET, dlib_model_path

log = logging.getLogger(__name__)

BATCH = 45  # an ingest chunk: 8 photos' faces x 5 alignments, one side (plain or mirrored)
BASELINE = "ort-today"
Run = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Candidate:
    """A way to run one of the models: ``make`` returns a function from a uint8 NHWC batch to descriptors."""

    name: str
    model: str  # key of :func:`write_models`
    what: str
    make: Callable[[Path], Run]


def write_models(folder: Path, keep: bool = False) -> dict[str, Path]:
    """The float model and int8 variants, quantised from dlib's weights and the shipped ranges, as files
    (``keep``: the files already there, as another ONNX Runtime build's run made them)."""
    names = ("float", "int8", "int8-qoperator", "int8-reduce-range", "int8-per-tensor")
    if keep and all((folder / f"{name}.onnx").is_file() for name in names):
        return {name: folder / f"{name}.onnx" for name in names}
    float_model = build_resnet_onnx(read_dlib_network(dlib_model_path(DLIB_RESNET)))
    ranges = shipped_ranges()
    variants = {
        "float": float_model,
        "int8": quantise_resnet(float_model, ranges),  # what dlib_resnet_v1_int8 is
        "int8-qoperator": quantise_resnet(float_model, ranges, quant_format="qoperator"),
        "int8-reduce-range": quantise_resnet(float_model, ranges, reduce_range=True),
        "int8-per-tensor": quantise_resnet(float_model, ranges, per_channel=False),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, model in variants.items():
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(model.SerializeToString())
    return paths


# --------------------------------------------------------------------------------------------
# ONNX Runtime


def today(path: Path) -> Run:
    """The project's session (``runtime.onnx_session``), one thread."""
    session = onnx_session(path, threads=1, what=path.name)
    return lambda batch: session.run({INPUT_NAME: batch})[0]


def ort_options(
    *,
    level: str = "ORT_ENABLE_ALL",
    spinning: bool = False,
    parallel: bool = False,
    mem_pattern: bool = True,
    arena: bool = True,
    disabled: tuple[str, ...] = (),
    save_then_reload: bool = False,
    config: tuple[tuple[str, str], ...] = (),
) -> Callable[[Path], Run]:
    """An ONNX Runtime session as ``onnx_session`` makes it (1 intra-op thread, no spinning) but for one
    option; ``save_then_reload`` writes the optimised graph (``optimized_model_filepath``) and runs that file
    with graph optimisation off."""

    def make(path: Path) -> Run:
        import onnxruntime as ort

        def options(opt_level: str) -> ort.SessionOptions:
            o = ort.SessionOptions()
            o.intra_op_num_threads = 1
            o.inter_op_num_threads = 1
            o.add_session_config_entry(NO_SPINNING[0], "1" if spinning else "0")
            o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, opt_level)
            o.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
            o.enable_mem_pattern = mem_pattern
            o.enable_cpu_mem_arena = arena
            o.log_severity_level = 3
            for key, value in config:
                o.add_session_config_entry(key, value)
            return o

        source = path
        if save_then_reload:
            source = path.with_name(path.stem + ".ort-optimised.onnx")
            o = options(level)
            o.optimized_model_filepath = str(source)
            ort.InferenceSession(str(path), o, providers=list(CPU_PROVIDERS))
            level_run = "ORT_DISABLE_ALL"
        else:
            level_run = level
        session = ort.InferenceSession(
            str(source), options(level_run), providers=list(CPU_PROVIDERS), disabled_optimizers=list(disabled)
        )
        return lambda batch: session.run(None, {INPUT_NAME: batch})[0]

    return make


def optimised_ops(path: Path, level: str = "ORT_ENABLE_ALL") -> dict[str, int]:
    """Operator counts (domain:type) of the graph ONNX Runtime runs for a model: shows whether QDQ pairs
    became integer kernels and whether the NHWC transformer made NHWC QLinearConv."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        o.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        o.log_severity_level = 3
        ort.InferenceSession(str(path), o, providers=list(CPU_PROVIDERS))
        graph = onnx.load(o.optimized_model_filepath).graph
    counts: dict[str, int] = {}
    for node in graph.node:
        key = f"{node.domain or 'ai.onnx'}:{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------------------------
# OpenVINO


def ov_options(hint: str = "LATENCY", *, pinning: bool | None = None, precision: str | None = None) -> Callable:
    """OpenVINO's CPU plugin on one thread, ``hint`` LATENCY or THROUGHPUT (with one stream)."""

    def make(path: Path) -> Run:
        import openvino as ov

        config: dict[str, object] = {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": hint}
        if hint == "THROUGHPUT":
            config["NUM_STREAMS"] = 1
        if pinning is not None:
            config["ENABLE_CPU_PINNING"] = pinning
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        compiled = ov.Core().compile_model(str(path), "CPU", config)
        request = compiled.create_infer_request()
        return lambda batch: np.array(request.infer({0: batch})[0], copy=True)

    return make


def openvino_kernels(path: Path) -> dict[str, int]:
    """The CPU plugin's kernels for a model's convolutions ("primitiveType runtimePrecision" counts): shows
    whether its int8 path runs (``*_vnni``/``brgconv_avx512_core_vnni``...) or it falls back to float."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY"})
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = {k: op.get_rt_info()[k].astype(str) for k in ("layerType", "primitiveType", "runtimePrecision")}
        if info["layerType"] not in ("Convolution", "FullyConnected", "Eltwise", "Pooling", "Pad"):
            continue
        key = f"{info['layerType']} {info['primitiveType']} {info['runtimePrecision']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def ort_openvino_ep(path: Path) -> Run:
    """ONNX Runtime's OpenVINO execution provider (the ``onnxruntime-openvino`` build), CPU, one thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry(*NO_SPINNING)
    options.log_severity_level = 3
    provider = ("OpenVINOExecutionProvider", {"device_type": "CPU", "num_of_threads": "1"})
    session = ort.InferenceSession(str(path), options, providers=[provider, "CPUExecutionProvider"])
    return lambda batch: session.run(None, {INPUT_NAME: batch})[0]


def candidates() -> list[Candidate]:
    """Every candidate; OpenVINO's only where it imports, the OpenVINO execution provider only with the
    ``onnxruntime-openvino`` build of ONNX Runtime (which then also runs today's session: see the docs)."""
    out = [
        Candidate(BASELINE, "int8", "today: runtime.onnx_session, int8 QDQ, 1 thread", today),
        Candidate("ort-spinning", "int8", "allow_spinning 1 (ORT's default)", ort_options(spinning=True)),
        Candidate(
            "ort-extended",
            "int8",
            "ORT_ENABLE_EXTENDED (no layout/NHWC step)",
            ort_options(level="ORT_ENABLE_EXTENDED"),
        ),
        Candidate("ort-basic", "int8", "ORT_ENABLE_BASIC", ort_options(level="ORT_ENABLE_BASIC")),
        Candidate(
            "ort-no-nhwc", "int8", "ENABLE_ALL without NhwcTransformer", ort_options(disabled=("NhwcTransformer",))
        ),
        Candidate(
            "ort-qdq-cleanup",
            "int8",
            "session.enable_quant_qdq_cleanup 1",
            ort_options(config=(("session.enable_quant_qdq_cleanup", "1"),)),
        ),
        Candidate("ort-parallel", "int8", "execution_mode ORT_PARALLEL", ort_options(parallel=True)),
        Candidate("ort-no-mem-pattern", "int8", "enable_mem_pattern off", ort_options(mem_pattern=False)),
        Candidate("ort-no-arena", "int8", "enable_cpu_mem_arena off", ort_options(arena=False)),
        Candidate(
            "ort-saved-optimised",
            "int8",
            "optimized_model_filepath, reloaded with DISABLE_ALL",
            ort_options(save_then_reload=True),
        ),
        Candidate("ort-qoperator", "int8-qoperator", "QOperator model (QLinearConv...)", today),
        Candidate("ort-reduce-range", "int8-reduce-range", "reduce_range=True (7-bit weights)", today),
        Candidate("ort-per-tensor", "int8-per-tensor", "per-tensor weight scales", today),
        Candidate("ort-float", "float", "the float model, today's session", today),
    ]
    import onnxruntime as ort

    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        out.append(
            Candidate("ort-openvino-ep", "int8", "onnxruntime-openvino's OpenVINO EP, CPU, 1 thread", ort_openvino_ep)
        )
    if not _openvino_importable():
        log.warning("openvino not importable: its candidates are left out")
        return out
    out += [
        Candidate("ov-int8-latency", "int8", "OpenVINO, int8 QDQ, LATENCY, 1 thread", ov_options()),
        Candidate("ov-int8-latency-f32", "int8", "the same, INFERENCE_PRECISION_HINT f32", ov_options(precision="f32")),
        Candidate("ov-int8-nopin", "int8", "the same, ENABLE_CPU_PINNING off", ov_options(pinning=False)),
        Candidate(
            "ov-int8-throughput", "int8", "OpenVINO, int8, THROUGHPUT, 1 stream, 1 thread", ov_options("THROUGHPUT")
        ),
        Candidate("ov-float-latency", "float", "OpenVINO, float model, LATENCY, 1 thread", ov_options()),
        Candidate(
            "ov-float-latency-f32", "float", "OpenVINO, float model, f32 precision hint", ov_options(precision="f32")
        ),
    ]
    return out


# --------------------------------------------------------------------------------------------


def speed(runs: dict[str, Run], chips: np.ndarray, repeats: int) -> dict[str, dict[str, float]]:
    """Best wall and CPU ms per chip of each run over ``repeats`` interleaved rounds of all batches."""
    batches = [np.ascontiguousarray(chips[i : i + BATCH]) for i in range(0, len(chips) - BATCH + 1, BATCH)]
    reference = runs[BASELINE](batches[0])
    result = {}
    for name, run in runs.items():  # warm-up; the first batch's descriptors against today's, and one by one
        out = np.asarray(run(batches[0]), np.float32).reshape(len(batches[0]), -1)
        cos = np.sum(unit(out) * unit(reference), axis=1)
        result[name] = {"wall": np.inf, "cpu": np.inf, "max_abs": float(np.abs(out - reference).max())}
        result[name]["min_cos"] = float(cos.min())
        alone = np.concatenate([run(batches[0][i : i + 1]) for i in range(0, len(batches[0]), 5)])
        result[name]["batch_dependence"] = float(np.abs(alone - out[::5]).max())  # 0: a chip's batch is irrelevant
    n = sum(len(b) for b in batches)
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                run(batch)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            result[name]["wall"] = min(result[name]["wall"], 1000 * wall / n)
            result[name]["cpu"] = min(result[name]["cpu"], 1000 * cpu / n)
    return result


def raw_views(run: Run, name: str, chips: np.ndarray) -> np.ndarray:
    """(photos, 5 alignments, 2 (plain, mirror), 128) raw descriptors, cached beside the chips."""
    cache = int8_chips.cache_dir() / f"runtime-raw-{name}-{len(chips)}.npy"
    if cache.is_file():
        return np.load(cache)
    flat = chips.reshape(-1, *chips.shape[2:])
    out = []
    started = time.process_time()
    for start in range(0, len(flat), BATCH):
        batch = np.ascontiguousarray(flat[start : start + BATCH])
        out.append(np.stack([run(batch), run(np.ascontiguousarray(batch[:, :, ::-1]))], axis=1))
    raw = np.concatenate(out).reshape(len(chips), chips.shape[1], 2, -1).astype(np.float32)
    log.info("%s: %d views in %.0f s of CPU", name, raw[..., 0].size, time.process_time() - started)
    np.save(cache, raw)
    return raw


def agreement(raw: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    cos = np.sum(unit(raw) * unit(ref), axis=-1).reshape(-1)
    recipe = np.sum(recipe_vectors(raw) * recipe_vectors(ref), axis=1)
    return {
        "view_cos_min": float(cos.min()),
        "view_cos_p1": float(np.percentile(cos, 1)),
        "view_cos_median": float(np.median(cos)),
        "max_abs_diff": float(np.abs(raw - ref).max()),
        "recipe_cos_min": float(recipe.min()),
        "recipe_cos_median": float(np.median(recipe)),
    }


def speed_report(every: dict[str, Candidate], wanted: list[str], paths: dict[str, Path], chips, args) -> dict:  # type: ignore[no-untyped-def]
    """Time the wanted candidates against today's session; print the table and what each runtime runs."""
    runs, made = {}, {}
    for name in wanted:
        started = time.process_time()
        runs[name] = every[name].make(paths[every[name].model])
        made[name] = 1000 * (time.process_time() - started)
    count = BATCH * args.batches
    sample = np.asarray(chips[: count // chips.shape[1] + 1]).reshape(-1, *chips.shape[2:])[:count]
    timed = speed(runs, sample, args.repeats)
    base = timed[BASELINE]
    print(f"\nms per chip, batches of {BATCH}, best of {args.repeats}, load {os.getloadavg()[0]:.1f}")
    head = ("candidate", "wall", "cpu", "x cpu", "x wall", "max|d|", "min cos", "make ms", "batch|d|")
    print(f"{head[0]:22s} " + " ".join(f"{h:>8s}" for h in head[1:]) + "  what")
    for name, r in timed.items():
        r.update(x_cpu=base["cpu"] / r["cpu"], x_wall=base["wall"] / r["wall"], make_cpu_ms=made[name])
        print(
            f"{name:22s} {r['wall']:8.2f} {r['cpu']:8.2f} {r['x_cpu']:8.2f} {r['x_wall']:8.2f} "
            f"{r['max_abs']:8.1e} {r['min_cos']:8.5f} {made[name]:8.0f} {r['batch_dependence']:8.1e}  "
            f"{every[name].what}"
        )
    report: dict = {"speed": timed}
    report["ort_graph"] = {name: optimised_ops(paths[name]) for name in ("int8", "int8-qoperator")}
    report["ort_graph"]["int8 EXTENDED"] = optimised_ops(paths["int8"], "ORT_ENABLE_EXTENDED")
    for name, ops in report["ort_graph"].items():
        print(f"ONNX Runtime's graph, {name}: {ops}")
    if any(n.startswith("ov-") for n in wanted):
        report["openvino_kernels"] = {m: openvino_kernels(paths[m]) for m in ("int8", "float")}
        for name, kernels in report["openvino_kernels"].items():
            print(f"OpenVINO's kernels, {name}: {kernels}")
    return report


def agree_report(
    every: dict[str, Candidate], agree: list[str], paths: dict[str, Path], photos, chips, verify: bool
) -> dict:  # type: ignore[no-untyped-def]
    """Descriptor agreement of the ``agree`` candidates with today's and the float model's on every
    pairsDevTrain view, and (``verify``) pairsDevTrain verification and the 1:N check with each."""
    raws = {}
    for name in [BASELINE, "ort-float", *agree]:
        raws[name] = raw_views(every[name].make(paths[every[name].model]), name, np.asarray(chips))
    report: dict = {"agree": {}}
    for name in agree:
        report["agree"][name] = {"vs_today": agreement(raws[name], raws[BASELINE])}
        report["agree"][name]["vs_float"] = agreement(raws[name], raws["ort-float"])
    report["agree"][BASELINE] = {"vs_float": agreement(raws[BASELINE], raws["ort-float"])}
    for name, result in report["agree"].items():
        print(f"agreement {name}: {result}")
    if not verify:
        return report
    pairs = dev_pairs()
    index = {p: i for i, p in enumerate(photos)}
    report["verify"] = {}
    ref = verification(recipe_vectors(raws[BASELINE]), index, pairs)["scores"]
    for name in [BASELINE, "ort-float", *agree]:
        vectors = recipe_vectors(raws[name])
        result = verification(vectors, index, pairs)
        scores = result.pop("scores")
        result["pairs_correct"] = round(result["accuracy"] * len(pairs))
        result["score_abs_diff_max_vs_today"] = float(np.abs(scores - ref).max())
        result.update(identification(vectors, photos))
        report["verify"][name] = result
        print(f"verify {name} on {len(pairs)} pairs: {result}")
    return report


ISA_CAPS = ("", "AVX512_CORE", "AVX2")  # oneDNN's ISA cap: none (VNNI here), AVX-512 without VNNI, AVX2


def ov_isa_probe(model: Path, chips: np.ndarray, out: Path) -> None:
    """In a child process started with ``ONEDNN_MAX_CPU_ISA`` set: OpenVINO's descriptors of one batch and its
    best CPU ms per chip, saved to ``out`` (the cap must be set before OpenVINO loads, hence a process)."""
    run = ov_options()(model)
    batch = np.ascontiguousarray(chips)
    descriptors = run(batch)
    best = np.inf
    for _ in range(5):
        started = time.process_time()
        run(batch)
        best = min(best, 1000 * (time.process_time() - started) / len(batch))
    np.savez(out, descriptors=descriptors, cpu_ms=best)


def isa_report(model: Path, name: str, cache: Path) -> dict:
    """OpenVINO's int8 path under oneDNN ISA caps: whether the default uses VNNI (a cap makes it slower) and
    how much the descriptors move on a CPU without it (as far as the cap emulates one)."""
    import subprocess
    import sys

    out = {}
    for cap in ISA_CAPS:
        target = cache / f"runtime-isa-{name}-{cap or 'default'}.npz"
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if cap:
            env["ONEDNN_MAX_CPU_ISA"] = cap
        command = [sys.executable, "-m", "bench.speed.embed_runtime", "--isa-probe", str(model), str(target)]
        subprocess.run(command, env=env, check=True)
        with np.load(target) as data:
            out[cap or "default"] = {"descriptors": data["descriptors"], "cpu_ms": float(data["cpu_ms"])}
    reference = out["default"]["descriptors"]
    report = {}
    for cap, result in out.items():
        cos = np.sum(unit(result["descriptors"]) * unit(reference), axis=1)
        report[cap] = {"cpu_ms_per_chip": result["cpu_ms"], "min_cos_vs_default": float(cos.min())}
        report[cap]["max_abs_vs_default"] = float(np.abs(result["descriptors"] - reference).max())
        print(f"OpenVINO {name}, oneDNN ISA {cap}: {report[cap]}")
    return report


AVX2_CPU = "Haswell"  # the CPU qemu emulates for --what avx2: AVX2 and FMA, no AVX-512, no VNNI
AVX2_MODELS = ("int8", "int8-reduce-range", "float")


def ort_probe(chips: Path, out: Path, models: list[Path]) -> None:
    """Today's session's descriptors of the chips in ``chips`` for each model, saved to ``out`` (run by
    :func:`avx2_report` under qemu, whose emulated CPUID makes ONNX Runtime pick its AVX2 kernels)."""
    batch = np.load(chips)
    found = {model.stem: today(model)(batch) for model in models}
    if _openvino_importable():
        found["ov-" + models[0].stem] = ov_options()(models[0])(batch)
    np.savez(out, **found)


def _openvino_importable() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def avx2_report(paths: dict[str, Path], chips: np.ndarray, count: int, cache: Path) -> dict:
    """ONNX Runtime's int8 descriptors on an AVX2 CPU without VNNI (emulated by ``qemu-x86_64 -cpu Haswell``,
    ~400x slower, hence few chips) against this CPU's: whether the shipped model gives the same descriptors
    on CPUs without VNNI, where ONNX Runtime's u8 x s8 kernels can saturate (``reduce_range`` is the remedy)."""
    import shutil
    import subprocess
    import sys

    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        log.warning("qemu-x86_64 not found (apt-get install qemu-user): --what avx2 skipped")
        return {}
    step = max(1, len(chips) // count)
    sample = np.ascontiguousarray(np.asarray(chips[::step][:count, 0]))  # plain chips of photos spread out
    np.save(cache / "runtime-avx2-chips.npy", sample)
    target = cache / "runtime-avx2.npz"
    models = [str(paths[name]) for name in AVX2_MODELS]
    command = [qemu, "-cpu", AVX2_CPU, sys.executable, "-m", "bench.speed.embed_runtime", "--ort-probe"]
    started = time.perf_counter()
    subprocess.run([*command, str(cache / "runtime-avx2-chips.npy"), str(target), *models], check=True)
    log.info("%d chips x %d models under qemu in %.0f s", len(sample), len(models), time.perf_counter() - started)
    native = {name: today(paths[name])(sample) for name in AVX2_MODELS}
    report = {}
    with np.load(target) as emulated:
        if f"ov-{AVX2_MODELS[0]}" in emulated.files:  # OpenVINO's int8, where it imports (child and here)
            native[f"ov-{AVX2_MODELS[0]}"] = ov_options()(paths[AVX2_MODELS[0]])(sample)
        for name in native:
            cos = np.sum(unit(emulated[name]) * unit(native[name]), axis=1)
            to_float = np.sum(unit(emulated[name]) * unit(native["float"]), axis=1)
            native_float = np.sum(unit(native[name]) * unit(native["float"]), axis=1)
            report[name] = {
                "chips": len(sample),
                "max_abs_avx2_vs_here": float(np.abs(emulated[name] - native[name]).max()),
                "cos_avx2_vs_here_min": float(cos.min()),
                "cos_avx2_vs_here_median": float(np.median(cos)),
                "cos_to_float_here_min": float(native_float.min()),
                "cos_to_float_here_median": float(np.median(native_float)),
                "cos_to_float_avx2_min": float(to_float.min()),
                "cos_to_float_avx2_median": float(np.median(to_float)),
            }
            print(f"AVX2 (qemu {AVX2_CPU}) vs this CPU, {name}: {report[name]}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", default="speed", help="speed,agree,verify,isa,avx2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=4, help="batches of 45 chips per timed round")
    parser.add_argument("--candidates", default="", help="comma-separated names (default: all)")
    parser.add_argument("--agree", default="", help="candidates to embed every pairsDevTrain view with")
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "h-ovino-models")
    parser.add_argument("--keep-models", action="store_true", help="reuse the model files already in --models")
    parser.add_argument("--avx2-chips", type=int, default=60, help="chips for --what avx2 (emulated: ~2 s each)")
    parser.add_argument("--isa-probe", nargs=2, type=Path, help=argparse.SUPPRESS)  # MODEL OUT: isa_report's child
    parser.add_argument("--ort-probe", nargs="+", type=Path, help=argparse.SUPPRESS)  # CHIPS OUT MODEL...: avx2
    args = parser.parse_args()
    if args.ort_probe:
        ort_probe(args.ort_probe[0], args.ort_probe[1], args.ort_probe[2:])
        return
    if args.isa_probe:
        chips = int8_chips.load("pairs")[1]
        ov_isa_probe(args.isa_probe[0], np.asarray(chips[:9]).reshape(-1, *chips.shape[2:]), args.isa_probe[1])
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    what = set(args.what.split(","))
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    paths = write_models(args.models, args.keep_models)
    every = {c.name: c for c in candidates()}
    named = [n for n in args.candidates.split(",") if n and n != BASELINE]
    wanted = [BASELINE, *named] if named else list(every)
    agree = [n for n in args.agree.split(",") if n]
    unknown = sorted(set(wanted + agree) - every.keys())
    if unknown:
        parser.error(f"unknown (or not importable) candidates {unknown}: choose from {sorted(every)}")
    photos, chips = int8_chips.load("pairs")
    report: dict = {"batch": BATCH, "onnxruntime": ort.__version__}
    if "speed" in what:
        report.update(speed_report(every, wanted, paths, chips, args))
    if what & {"agree", "verify"} and agree:
        report.update(agree_report(every, agree, paths, photos, chips, "verify" in what))
    if "isa" in what:
        report["openvino_isa"] = {
            m: isa_report(paths[m], m, int8_chips.cache_dir()) for m in ("int8", "int8-reduce-range")
        }
    if "avx2" in what:
        report["avx2"] = avx2_report(paths, chips, args.avx2_chips, int8_chips.cache_dir())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "embed_runtime.json").write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
