//! The few protobuf messages of ONNX's `onnx.proto3` an exporter writes, encoded by
//! hand (varints, 32-bit floats and length-delimited fields: wire types 0, 5 and 2):
//! no code generator, no dependency.
//!
//! Field numbers are those of ONNX 1.14's `onnx.proto3`.

/// A message being encoded: fields appended in any order.
#[derive(Default, Clone)]
pub struct Msg(Vec<u8>);

impl Msg {
    pub fn new() -> Msg {
        Msg::default()
    }

    pub fn bytes(self) -> Vec<u8> {
        self.0
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// An integer field (`int64`, `int32`, enums); negative values as ten bytes.
    pub fn int(mut self, field: u32, v: i64) -> Msg {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    /// A `float` field (wire type 5).
    pub fn float(mut self, field: u32, v: f32) -> Msg {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` or `string` field.
    pub fn bytes_field(mut self, field: u32, b: &[u8]) -> Msg {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn str(self, field: u32, s: &str) -> Msg {
        self.bytes_field(field, s.as_bytes())
    }

    /// An embedded message.
    pub fn msg(self, field: u32, m: Msg) -> Msg {
        let b = m.bytes();
        self.bytes_field(field, &b)
    }

    /// A packed `repeated int64`.
    pub fn ints(self, field: u32, vs: &[i64]) -> Msg {
        let mut packed = Msg::new();
        for &v in vs {
            packed.varint(v as u64);
        }
        self.bytes_field(field, &packed.bytes())
    }
}

/// `TensorProto.DataType`.
pub mod elem {
    pub const FLOAT: i64 = 1;
    pub const UINT8: i64 = 2;
    pub const INT8: i64 = 3;
    pub const INT16: i64 = 5;
    pub const INT32: i64 = 6;
    pub const INT64: i64 = 7;
    pub const BOOL: i64 = 9;
    pub const FLOAT16: i64 = 10;
    pub const DOUBLE: i64 = 11;
    pub const BFLOAT16: i64 = 16;
}

/// `AttributeProto` of each kind: name 1, f 2, i 3, s 4, floats 7, ints 8, type 20.
pub fn attr_int(name: &str, v: i64) -> Msg {
    Msg::new().str(1, name).int(3, v).int(20, 2)
}

pub fn attr_float(name: &str, v: f32) -> Msg {
    Msg::new().str(1, name).float(2, v).int(20, 1)
}

pub fn attr_string(name: &str, v: &str) -> Msg {
    Msg::new().str(1, name).str(4, v).int(20, 3)
}

pub fn attr_ints(name: &str, vs: &[i64]) -> Msg {
    Msg::new().str(1, name).ints(8, vs).int(20, 7)
}

/// `TensorProto`: dims 1, data_type 2, name 8, raw_data 9 (little-endian).
pub fn tensor(name: &str, elem: i64, dims: &[usize], raw: &[u8]) -> Msg {
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    Msg::new()
        .ints(1, &dims)
        .int(2, elem)
        .str(8, name)
        .bytes_field(9, raw)
}

/// A dimension of a `TensorShapeProto`: a size, or a symbolic name.
pub enum Dim {
    Size(usize),
    Named(String),
}

/// `ValueInfoProto` (name 1, type 2) of a tensor: `TypeProto.tensor_type` 1 →
/// `elem_type` 1, `shape` 2 → `dim` 1 → `dim_value` 1 | `dim_param` 2.
pub fn value_info(name: &str, elem: i64, dims: &[Dim]) -> Msg {
    let mut shape = Msg::new();
    for d in dims {
        let dim = match d {
            Dim::Size(n) => Msg::new().int(1, *n as i64),
            Dim::Named(s) => Msg::new().str(2, s),
        };
        shape = shape.msg(1, dim);
    }
    let tensor_type = Msg::new().int(1, elem).msg(2, shape);
    Msg::new()
        .str(1, name)
        .msg(2, Msg::new().msg(1, tensor_type))
}

/// `NodeProto`: input 1, output 2, name 3, op_type 4, attribute 5.
pub fn node(op: &str, name: &str, inputs: &[String], outputs: &[String], attrs: Vec<Msg>) -> Msg {
    let mut m = Msg::new();
    for i in inputs {
        m = m.str(1, i);
    }
    for o in outputs {
        m = m.str(2, o);
    }
    m = m.str(3, name).str(4, op);
    for a in attrs {
        m = m.msg(5, a);
    }
    m
}

/// `ModelProto`: ir_version 1, producer_name 2, producer_version 3, graph 7,
/// opset_import 8 (`OperatorSetIdProto`: domain 1, version 2). `GraphProto`: node 1,
/// name 2, initializer 5, input 11, output 12.
pub fn model(
    name: &str,
    nodes: Vec<Msg>,
    initializers: Vec<Msg>,
    inputs: Vec<Msg>,
    outputs: Vec<Msg>,
    opset: i64,
) -> Vec<u8> {
    let mut g = Msg::new();
    for n in nodes {
        g = g.msg(1, n);
    }
    g = g.str(2, name);
    for t in initializers {
        g = g.msg(5, t);
    }
    for i in inputs {
        g = g.msg(11, i);
    }
    for o in outputs {
        g = g.msg(12, o);
    }
    Msg::new()
        .int(1, 8)
        .str(2, "dnnc")
        .str(3, env!("CARGO_PKG_VERSION"))
        .msg(7, g)
        .msg(8, Msg::new().str(1, "").int(2, opset))
        .bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_encode_as_protobuf_does() {
        // `int64 a = 1; a = 150` is 08 96 01 (the protobuf guide's example).
        assert_eq!(Msg::new().int(1, 150).bytes(), [0x08, 0x96, 0x01]);
        // A negative int64 takes ten bytes.
        assert_eq!(Msg::new().int(1, -1).bytes().len(), 11);
        // `string b = 2; b = "testing"`.
        assert_eq!(
            Msg::new().str(2, "testing").bytes(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        // Packed `repeated int64 d = 4; [3, 270, 86942]`.
        assert_eq!(
            Msg::new().ints(4, &[3, 270, 86942]).bytes(),
            [0x22, 0x06, 0x03, 0x8E, 0x02, 0x9E, 0xA7, 0x05]
        );
    }
}
