//! Floats in program descriptions. JSON has no NaN and no infinities (serde_json
//! writes them as `null`, which then cannot be read back), yet programs hold them: the
//! `-inf` padding of max pooling, the `inf` bound that guards a training step's
//! updates, masks. Non-finite values are written as the strings `"NaN"`, `"inf"` and
//! `"-inf"`; finite ones stay JSON numbers, so descriptions read as before.

use dnnc_tensor::Data;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One float: a JSON number, or a string for the values JSON cannot hold.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Float {
    Number(f64),
    Text(String),
}

impl Float {
    fn of(v: f64) -> Float {
        if v.is_finite() {
            Float::Number(v)
        } else if v.is_nan() {
            Float::Text("NaN".into())
        } else if v > 0.0 {
            Float::Text("inf".into())
        } else {
            Float::Text("-inf".into())
        }
    }

    fn value<E: serde::de::Error>(self) -> Result<f64, E> {
        match self {
            Float::Number(v) => Ok(v),
            Float::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!("`{other}` is not a float"))),
            },
        }
    }
}

/// `#[serde(with = "json_float::f64_value")]` for an `f64` field.
pub mod f64_value {
    use super::*;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        Float::of(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Float::deserialize(d)?.value()
    }
}

/// The same layout as [`Data`]'s derived form, with floats as [`Float`]s.
#[derive(Serialize, Deserialize)]
enum DataRepr {
    F32(Vec<Float>),
    F64(Vec<Float>),
    F16(Vec<Float>),
    BF16(Vec<Float>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

/// `#[serde(with = "json_float::data")]` for an `Option<Data>` field.
pub mod data {
    use super::*;
    use dnnc_tensor::DType;

    fn floats(d: &Data) -> Vec<Float> {
        d.to_f64_vec().into_iter().map(Float::of).collect()
    }

    pub fn serialize<S: Serializer>(v: &Option<Data>, s: S) -> Result<S::Ok, S::Error> {
        let repr = v.as_ref().map(|d| match d {
            Data::F32(_) => DataRepr::F32(floats(d)),
            Data::F64(_) => DataRepr::F64(floats(d)),
            Data::F16(_) => DataRepr::F16(floats(d)),
            Data::BF16(_) => DataRepr::BF16(floats(d)),
            Data::I8(v) => DataRepr::I8(v.clone()),
            Data::U8(v) => DataRepr::U8(v.clone()),
            Data::I16(v) => DataRepr::I16(v.clone()),
            Data::I32(v) => DataRepr::I32(v.clone()),
            Data::I64(v) => DataRepr::I64(v.clone()),
            Data::Bool(v) => DataRepr::Bool(v.clone()),
        });
        repr.serialize(s)
    }

    fn of_floats<E: serde::de::Error>(dtype: DType, v: Vec<Float>) -> Result<Data, E> {
        let values: Vec<f64> = v.into_iter().map(Float::value).collect::<Result<_, E>>()?;
        Ok(Data::from_f64(dtype, values))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Data>, D::Error> {
        Ok(match Option::<DataRepr>::deserialize(d)? {
            None => None,
            Some(DataRepr::F32(v)) => Some(of_floats(DType::F32, v)?),
            Some(DataRepr::F64(v)) => Some(of_floats(DType::F64, v)?),
            Some(DataRepr::F16(v)) => Some(of_floats(DType::F16, v)?),
            Some(DataRepr::BF16(v)) => Some(of_floats(DType::BF16, v)?),
            Some(DataRepr::I8(v)) => Some(Data::I8(v)),
            Some(DataRepr::U8(v)) => Some(Data::U8(v)),
            Some(DataRepr::I16(v)) => Some(Data::I16(v)),
            Some(DataRepr::I32(v)) => Some(Data::I32(v)),
            Some(DataRepr::I64(v)) => Some(Data::I64(v)),
            Some(DataRepr::Bool(v)) => Some(Data::Bool(v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Both {
        #[serde(with = "f64_value")]
        value: f64,
        #[serde(with = "data")]
        init: Option<Data>,
    }

    #[test]
    fn non_finite_values_round_trip_through_json() {
        let x = Both {
            value: f64::NEG_INFINITY,
            init: Some(Data::F32(vec![1.5, f32::INFINITY, f32::NAN, -0.0])),
        };
        let text = serde_json::to_string(&x).unwrap();
        assert!(text.contains("\"-inf\"") && text.contains("\"NaN\"") && text.contains("1.5"));
        let back: Both = serde_json::from_str(&text).unwrap();
        assert_eq!(back.value, f64::NEG_INFINITY);
        let Some(Data::F32(v)) = back.init else {
            panic!()
        };
        assert_eq!(v[0], 1.5);
        assert_eq!(v[1], f32::INFINITY);
        assert!(v[2].is_nan());
        assert!(v[3] == 0.0 && v[3].is_sign_negative());
    }
}
