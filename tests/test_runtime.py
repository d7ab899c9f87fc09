"""The ONNX Runtime sessions every model runs in (facesearch.models.runtime)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from facesearch.models.runtime import onnx_session


def test_sessions_do_not_spin_idle_threads_and_still_run() -> None:
    """Issue 11: idle intra-op threads do not busy-wait for the next run (they burned ~10% of an ingest's CPU on a
    shared 2-core machine); the session still runs its model. A tiny graph (y = x + x), no photos."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "double", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = onnx_session(model.SerializeToString())
    options = session._session.get_session_options()  # the options the session was built with
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    (out,) = session.run({"x": np.array([[1.0, 2.0, 3.0]], dtype=np.float32)})
    np.testing.assert_array_equal(out, [[2.0, 4.0, 6.0]])
