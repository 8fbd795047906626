//! Engine-neutral bind parameters.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::{Sqlite, Type};

/// A value bound to a `?` placeholder. Types are the portable subset every engine stores the same way:
/// ids and enums as text, instants as Unix milliseconds, flags as booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds the argument list for a statement: `args![user_id, email]`.
#[macro_export]
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::Value::from($value)),*]
    };
}

impl<'q> sqlx::Encode<'q, Sqlite> for Value {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Bool(v) => <bool as sqlx::Encode<Sqlite>>::encode_by_ref(v, buf),
            Value::Int(v) => <i64 as sqlx::Encode<Sqlite>>::encode_by_ref(v, buf),
            Value::Real(v) => <f64 as sqlx::Encode<Sqlite>>::encode_by_ref(v, buf),
            Value::Text(v) => <String as sqlx::Encode<Sqlite>>::encode_by_ref(v, buf),
            Value::Bytes(v) => <Vec<u8> as sqlx::Encode<Sqlite>>::encode_by_ref(v, buf),
        }
    }

    fn produces(&self) -> Option<SqliteTypeInfo> {
        Some(match self {
            Value::Null | Value::Text(_) => <String as Type<Sqlite>>::type_info(),
            Value::Bool(_) => <bool as Type<Sqlite>>::type_info(),
            Value::Int(_) => <i64 as Type<Sqlite>>::type_info(),
            Value::Real(_) => <f64 as Type<Sqlite>>::type_info(),
            Value::Bytes(_) => <Vec<u8> as Type<Sqlite>>::type_info(),
        })
    }
}

impl Type<Sqlite> for Value {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}
