"""A small stub of the TensorRT 10 Python API, for test_tensorrt_backend.py (no machine here has TensorRT).

Its "engine" runs the real ONNX model with ONNX Runtime, reading its inputs from and writing its outputs
to the raw addresses the backend binds with ``set_tensor_address`` (CPU torch tensors stand in for
device buffers); its builder records the optimization profiles and flags; its runtime refuses blobs it
did not write. ``FakeCuda`` stands in for torch.cuda's current device and stream.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import json
import threading
import types

import numpy as np
import onnxruntime as ort

MAGIC = b"STUB-ENGINE\n"


def make_stub(version: str = "10.3.0", fail: str | None = None) -> types.ModuleType:
    """A ``tensorrt`` module: fail = "parse" | "build" | "builder_raises" breaks that step."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    trt.builds = []  # one dict per build_serialized_network call
    trt.executions = []  # (device index, stream handle) per execute_async_v3
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.DataType = types.SimpleNamespace(FLOAT="float32", HALF="float16")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.BuilderFlag = types.SimpleNamespace(FP16="fp16")

    class Tensor:
        def __init__(self, name, shape):
            self.name, self.shape = name, tuple(d if isinstance(d, int) else -1 for d in shape)

    class NetworkDefinition:
        def __init__(self):
            self.inputs, self.outputs, self.onnx_path = [], [], None

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i):
            return self.errors[i]

        def parse_from_file(self, path):
            if fail == "parse":
                self.errors.append("In node 3 (Conv): unsupported operator\nmore detail")
                return False
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            self.network.inputs = [Tensor(i.name, i.shape) for i in session.get_inputs()]
            self.network.outputs = [Tensor(o.name, o.shape) for o in session.get_outputs()]
            self.network.onnx_path = path
            return True

    class TimingCache:
        def __init__(self, data):
            self.entries = json.loads(data) if data else []

        def serialize(self):
            return json.dumps(self.entries).encode()

    class BuilderConfig:
        def __init__(self):
            self.profiles, self.flags, self.pools, self.timing = [], set(), {}, None

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def set_flag(self, flag):
            self.flags.add(flag)

        def create_timing_cache(self, data):
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.timing = cache
            return True

        def get_timing_cache(self):
            return self.timing

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, min_shape, opt_shape, max_shape):
            self.shapes[name] = (tuple(min_shape), tuple(opt_shape), tuple(max_shape))

    class Builder:
        def __init__(self, logger):
            if fail == "builder_raises":
                raise RuntimeError("CUDA initialization failure with error: 35\nstack...")

        def create_network(self, flags):
            return NetworkDefinition()

        def create_optimization_profile(self):
            return Profile()

        def create_builder_config(self):
            return BuilderConfig()

        def build_serialized_network(self, network, config):
            (profile,) = config.profiles
            trt.builds.append({"shapes": dict(profile.shapes), "flags": set(config.flags),
                               "timing_entries_in": list(config.timing.entries)})
            if fail == "build":
                return None
            shapes = {name: opt for name, (_, opt, _) in profile.shapes.items()}
            config.timing.entries.append(f"conv tactics for {shapes['image']}")
            return MAGIC + json.dumps({"onnx": network.onnx_path, "shapes": shapes}).encode()

    class Engine:
        def __init__(self, spec):
            self.shapes = {k: tuple(v) for k, v in spec["shapes"].items()}
            self.session = ort.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
            self.inputs = [i.name for i in self.session.get_inputs()]
            self.names = self.inputs + [o.name for o in self.session.get_outputs()]
            self.num_io_tensors = len(self.names)

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name in self.inputs else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return trt.DataType.FLOAT

        def get_tensor_profile_shape(self, name, profile_index):
            assert profile_index == 0
            return [self.shapes[name]] * 3

        def create_execution_context(self):
            return Context(self)

    class Context:
        def __init__(self, engine):
            self.engine, self.input_shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            if tuple(shape) != self.engine.shapes[name]:  # outside the profile: TensorRT returns False
                return False
            self.input_shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if name in self.input_shapes:
                return self.input_shapes[name]
            b, _, h, w = self.input_shapes["image"]
            return self.input_shapes["state"] if name == "state_out" else (b, 1, h, w)

        def set_tensor_address(self, name, address):
            self.addresses[name] = address
            return True

        def _array(self, name):
            shape = self.get_tensor_shape(name)
            raw = (ctypes.c_float * int(np.prod(shape))).from_address(self.addresses[name])
            return np.ctypeslib.as_array(raw).reshape(shape)

        def execute_async_v3(self, stream_handle):
            trt.executions.append((CUDA.device_index(), stream_handle))
            feeds = {name: self._array(name).copy() for name in self.engine.inputs}
            outputs = self.engine.session.run(None, feeds)
            for name, value in zip(self.engine.names[len(self.engine.inputs):], outputs):
                self._array(name)[...] = value
            return True

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            if not bytes(blob).startswith(MAGIC):
                return None  # what TensorRT does with a blob from another version (it also logs an error)
            return Engine(json.loads(bytes(blob)[len(MAGIC):]))

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


class FakeCuda:
    """torch.cuda stand-ins: the current device and stream are thread-local, as in CUDA."""

    def __init__(self):
        self.local = threading.local()

    def device_index(self):
        return getattr(self.local, "device", 0)

    @contextlib.contextmanager
    def device(self, index):
        before, self.local.device = self.device_index(), index
        try:
            yield
        finally:
            self.local.device = before

    @contextlib.contextmanager
    def stream(self, stream):
        yield

    def make_stream(self, device=None):
        return types.SimpleNamespace(cuda_stream=0x5EA4 + self.device_index(), device=device)


CUDA = FakeCuda()
