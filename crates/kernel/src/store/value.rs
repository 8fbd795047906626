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
/// A bare UUID (a keyset cursor's id, a search document's), as its hyphenated text like the typed ids.
impl From<uuid::Uuid> for Value {
    fn from(v: uuid::Uuid) -> Self {
        Value::Text(v.to_string())
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

/// Makes a type a text column: bound as its text (`to_text(&value)`, anything `Display`) and read back
/// through `from_text(&str) -> Option<Self>`, so that rows hold ids and enums, not strings. Text that does
/// not parse is an error when the row is read (bad stored data is never turned into a default).
///
/// ```ignore
/// kernel::stored_as_text!(ChannelKind: |kind: &ChannelKind| kind.as_str(), ChannelKind::parse);
/// ```
#[macro_export]
macro_rules! stored_as_text {
    ($ty:ty: $to_text:expr, $from_text:expr) => {
        impl ::std::convert::From<$ty> for $crate::store::Value {
            fn from(value: $ty) -> Self {
                let to_text = $to_text;
                $crate::store::Value::Text(to_text(&value).to_string())
            }
        }
        impl $crate::__sqlx::Type<$crate::__sqlx::Sqlite> for $ty {
            fn type_info() -> $crate::__sqlx::sqlite::SqliteTypeInfo {
                <&str as $crate::__sqlx::Type<$crate::__sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &$crate::__sqlx::sqlite::SqliteTypeInfo) -> bool {
                <&str as $crate::__sqlx::Type<$crate::__sqlx::Sqlite>>::compatible(ty)
            }
        }
        impl<'r> $crate::__sqlx::Decode<'r, $crate::__sqlx::Sqlite> for $ty {
            fn decode(
                value: $crate::__sqlx::sqlite::SqliteValueRef<'r>,
            ) -> ::std::result::Result<Self, $crate::__sqlx::error::BoxDynError> {
                let text = <&str as $crate::__sqlx::Decode<$crate::__sqlx::Sqlite>>::decode(value)?;
                let from_text = $from_text;
                from_text(text).ok_or_else(|| format!("`{text}` is not a stored {}", ::std::stringify!($ty)).into())
            }
        }
    };
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
