"""Runs a submission's exported models on the grader's inputs, in a child that never ran student Python.

The grader copies each exported SavedModel (see ``harness.export_model``) into
a fresh folder with this file and a request, and starts::

    python -I -P model_runner.py REQUEST.npz RESULT.npz

under the same limits and unprivileged user as every other child. Nothing of
the submission's Python is importable here: the folder holds only this file,
the request and the models' graph and variable files. Before a model is
loaded, its graphs are read as data and refused when they use an operation
that reaches outside the computation (files, Python callbacks, summaries,
networking); the limits of the child bound loops and memory.

The request lists jobs ``job.K = "MODEL FUNCTION KEY"``: run ``FUNCTION``
(``encode`` or ``decode``) of ``MODEL`` on the arrays ``KEY.x`` [and
``KEY.c``] or ``KEY.z``, and write its outputs as ``KEY.mu``, ``KEY.logvar``
or ``KEY.x_hat``; a model that cannot be run gets ``MODEL.error``. It depends
on nothing of the grader but this file.
"""

import os
import sys

import numpy as np

# The fixed batch of the exported functions (``harness.EXPORT_BATCH``).
BATCH = 256
MAX_GRAPH_BYTES = 64 * 2**20
# Operations whose effects reach outside the computation. A model's encoder and
# decoder need none of them; the save and restore graphs that every SavedModel
# carries may use the checkpoint's own file operations, and the grader's loader
# never runs those graphs.
OUTSIDE_OPS = {
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "Save", "SaveV2", "SaveSlices", "Restore",
    "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec",
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "DecodeProtoV2", "EncodeProto", "LoadAndRemapMatrix",
    "GenerateVocabRemapping", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "InitializeTableFromDataset", "Rpc", "TryRpc", "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3",
    "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2", "OutfeedEnqueue", "OutfeedEnqueueTuple",
    "InfeedEnqueue", "Send", "Recv", "_Send", "_Recv", "CollectiveReduce", "CollectiveGather",
    "CollectiveBcastSend", "CollectiveBcastRecv",
}
OUTSIDE_PATTERNS = ("Summary", "Reader", "Writer", "Dataset", "Iterator", "Queue", "Barrier", "Collective",
                    "File", "Checkpoint", "Snapshot", "Xla", "TPU")
SAVE_RESTORE_OPS = {"Const", "Identity", "NoOp", "RestoreV2", "SaveV2", "MergeV2Checkpoints", "ShardedFilename",
                    "StringJoin", "StaticRegexFullMatch", "Select", "Pack", "ReadVariableOp", "AssignVariableOp",
                    "DisableCopyOnRead", "AssignVariableXlaConcatND", "ReadVariableXlaSplitND"}


class RefusedModel(Exception):
    """The exported model cannot be run: the message says why, for the student's feedback."""


def forbidden_op(op, attrs):
    """Why the operation ``op`` may not run in the grader's process, or None when it may."""
    if op == "PrintV2":
        stream = attrs.get("output_stream")
        target = stream.s.decode("utf-8", "replace") if stream is not None else "stderr"
        return None if target in ("stderr", "stdout", "log(info)", "log(warning)", "log(error)") else \
            f"tf.print to {target!r}"
    if op in OUTSIDE_OPS or any(pattern in op for pattern in OUTSIDE_PATTERNS):
        return op
    return None


def called_functions(nodes):
    """The names of the graph functions that ``nodes`` call (through any function-valued attribute)."""
    names = set()
    for node in nodes:
        for value in node.attr.values():
            if value.HasField("func"):
                names.add(value.func.name)
            names.update(f.name for f in value.list.func)
        # A node whose op is a library function calls it directly.
        names.add(node.op)
    return names


def check_graph(folder):
    """Refuse a SavedModel that is not two plain graph functions; returns its op types.

    Every function of the graph's library is inspected, except those that only
    the checkpoint's save and restore operations reach (they may only use the
    checkpoint's own operations).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(folder, "saved_model.pb")
    if os.path.getsize(path) > MAX_GRAPH_BYTES:
        raise RefusedModel("its graph file is larger than 64 MB")
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as file:
        saved.ParseFromString(file.read())
    if len(saved.meta_graphs) != 1 or not saved.meta_graphs[0].HasField("object_graph_def"):
        raise RefusedModel("it is not a TensorFlow 2 SavedModel of one graph")
    graph = saved.meta_graphs[0]
    for name in ("encode", "decode"):
        if name not in graph.signature_def:
            raise RefusedModel(f"it has no {name} function")
    library = {f.signature.name: f for f in graph.graph_def.library.function}
    nodes = {node.name: node for node in graph.graph_def.node}

    def reachable(start):
        seen, todo = set(), [name for name in start if name in library]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(n for n in called_functions(library[name].node_def) if n in library)
        return seen

    saver = graph.saver_def
    saver_nodes = [nodes[n.split(":")[0].lstrip("^")] for n in (saver.save_tensor_name, saver.restore_op_name)
                   if n and n.split(":")[0].lstrip("^") in nodes]
    checkpoint_only = reachable(called_functions(saver_nodes))
    outside_checkpoint = [node for node in graph.graph_def.node if node not in saver_nodes]
    everything_else = reachable(called_functions(outside_checkpoint)) | (set(library) - checkpoint_only)
    ops = set()
    for name in checkpoint_only - everything_else:
        extra = {node.op for node in library[name].node_def} - SAVE_RESTORE_OPS - set(library)
        if extra:
            raise RefusedModel(f"its checkpoint graph uses {', '.join(sorted(extra))}")
    for function_nodes in [graph.graph_def.node, *(library[name].node_def for name in everything_else)]:
        for node in function_nodes:
            if node in saver_nodes or node.op in library:
                continue
            reason = forbidden_op(node.op, node.attr)
            if reason:
                raise RefusedModel(f"its graph uses {reason}, which reaches outside the model's computation")
            ops.add(node.op)
    return ops


def load(folder):
    import tensorflow as tf

    check_graph(folder)
    try:
        return tf.saved_model.load(folder)
    except Exception as error:  # noqa: BLE001 - any failure to load is the artifact's
        raise RefusedModel(f"it could not be loaded ({type(error).__name__}: {str(error)[:300]})") from None


def run_function(model, function, inputs):
    """Run ``function`` of a loaded model on ``inputs`` (name -> (N, ...) float32), BATCH rows at a time."""
    import tensorflow as tf

    signature = model.signatures[function]
    count = len(next(iter(inputs.values())))
    outputs = {}
    for start in range(0, count, BATCH):
        chunk = {}
        for name, value in inputs.items():
            block = value[start:start + BATCH].astype(np.float32)
            padding = BATCH - len(block)
            chunk[name] = tf.constant(np.concatenate([block, np.zeros((padding, *block.shape[1:]), np.float32)]))
        for name, value in signature(**chunk).items():
            rows = np.array(value.numpy(), dtype=np.float64)[: min(BATCH, count - start)]
            outputs.setdefault(name, []).append(rows)
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def main(argv):
    request_path, result_path = argv[1:3]
    with np.load(request_path, allow_pickle=False) as data:
        request = {key: data[key] for key in data.files}
    results = {}
    models = {}
    jobs = [str(request[key]).split() for key in sorted(request) if key.startswith("job.")]
    for model_name, function, key in jobs:
        if f"{model_name}.error" in results:
            continue
        # Which model runs now: when the child is stopped, the grader knows whose graph it was.
        results["running"] = np.array(f"{model_name} {function}")
        save(results, result_path)
        try:
            if model_name not in models:
                models[model_name] = load(model_name)
            inputs = {name: request[f"{key}.{name}"] for name in ("x", "c", "z") if f"{key}.{name}" in request}
            outputs = run_function(models[model_name], function, inputs)
        except RefusedModel as error:
            results[f"{model_name}.error"] = np.array(str(error))
        except Exception as error:  # noqa: BLE001 - a graph that fails at run time is the artifact's
            results[f"{model_name}.error"] = np.array(f"running its {function} function failed "
                                                      f"({type(error).__name__}: {str(error)[:300]})")
        else:
            for name, value in outputs.items():
                results[f"{key}.{name}"] = value
    results.pop("running")
    save(results, result_path)
    return 0


def save(results, path):
    """Save the results so far (a model that hangs or is stopped keeps the others' results)."""
    with open(path + ".partial", "wb") as file:
        np.savez(file, **results)
    os.replace(path + ".partial", path)


if __name__ == "__main__":
    # Keras, which TensorFlow imports at start-up, imports matplotlib.pyplot where it can, only to offer
    # plotting: half a second of CPU per run (measured), which this script, drawing nothing, does without.
    sys.modules["matplotlib"] = None
    sys.exit(main(sys.argv))
