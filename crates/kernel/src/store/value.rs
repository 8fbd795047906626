//! Engine-neutral bind parameters.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::mysql::MySqlTypeInfo;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::{MySql, Postgres, Sqlite, Type};

/// A value bound to a `?` placeholder. Types are the portable subset every engine stores the same way:
/// ids and enums as text, instants as Unix milliseconds, flags as booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A null of the column type it stands for: PostgreSQL checks a parameter's type against its column
    /// even when it is null (a text null cannot be stored in a bigint column).
    Null(Kind),
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// The type of a [`Value`], which a null keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Real,
    Text,
    Bytes,
}

/// What a bindable type's null is: `None` of an `Option<T>` binds as `T`'s kind of null.
pub trait Nullable {
    const KIND: Kind;
}

macro_rules! bindable {
    ($($ty:ty => $kind:ident, |$v:ident| $value:expr;)*) => {$(
        impl From<$ty> for Value {
            fn from($v: $ty) -> Self {
                $value
            }
        }
        impl Nullable for $ty {
            const KIND: Kind = Kind::$kind;
        }
    )*};
}

bindable! {
    bool => Bool, |v| Value::Bool(v);
    i64 => Int, |v| Value::Int(v);
    i32 => Int, |v| Value::Int(v.into());
    f64 => Real, |v| Value::Real(v);
    String => Text, |v| Value::Text(v);
    &str => Text, |v| Value::Text(v.to_owned());
    &String => Text, |v| Value::Text(v.clone());
    // A bare UUID (a keyset cursor's id, a search document's), as its hyphenated text like the typed ids.
    uuid::Uuid => Text, |v| Value::Text(v.to_string());
    Vec<u8> => Bytes, |v| Value::Bytes(v);
}

impl<T: Into<Value> + Nullable> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null(T::KIND), Into::into)
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
        impl $crate::store::Nullable for $ty {
            const KIND: $crate::store::Kind = $crate::store::Kind::Text;
        }
        $crate::__text_column!($ty, $from_text, $crate::__sqlx::Sqlite);
        $crate::__text_column!($ty, $from_text, $crate::__sqlx::Postgres);
        $crate::__text_column!($ty, $from_text, $crate::__sqlx::MySql);
    };
}

/// One engine's half of [`stored_as_text!`]: the type is its engine's text type, decoded through `from_text`.
#[doc(hidden)]
#[macro_export]
macro_rules! __text_column {
    ($ty:ty, $from_text:expr, $db:ty) => {
        impl $crate::__sqlx::Type<$db> for $ty {
            fn type_info() -> <$db as $crate::__sqlx::Database>::TypeInfo {
                <&str as $crate::__sqlx::Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as $crate::__sqlx::Database>::TypeInfo) -> bool {
                <&str as $crate::__sqlx::Type<$db>>::compatible(ty)
            }
        }
        impl<'r> $crate::__sqlx::Decode<'r, $db> for $ty {
            fn decode(
                value: <$db as $crate::__sqlx::Database>::ValueRef<'r>,
            ) -> ::std::result::Result<Self, $crate::__sqlx::error::BoxDynError> {
                let text = <&str as $crate::__sqlx::Decode<$db>>::decode(value)?;
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

/// `Value` as a parameter of one engine: each variant as that engine's type of it.
macro_rules! encode_value {
    ($db:ty, $buffer:ty, $type_info:ty) => {
        impl<'q> sqlx::Encode<'q, $db> for Value {
            fn encode_by_ref(&self, buf: &mut $buffer) -> Result<IsNull, BoxDynError> {
                match self {
                    Value::Null(_) => Ok(IsNull::Yes),
                    Value::Bool(v) => <bool as sqlx::Encode<$db>>::encode_by_ref(v, buf),
                    Value::Int(v) => <i64 as sqlx::Encode<$db>>::encode_by_ref(v, buf),
                    Value::Real(v) => <f64 as sqlx::Encode<$db>>::encode_by_ref(v, buf),
                    Value::Text(v) => <String as sqlx::Encode<$db>>::encode_by_ref(v, buf),
                    Value::Bytes(v) => <Vec<u8> as sqlx::Encode<$db>>::encode_by_ref(v, buf),
                }
            }

            fn produces(&self) -> Option<$type_info> {
                let kind = match self {
                    Value::Null(kind) => *kind,
                    Value::Bool(_) => Kind::Bool,
                    Value::Int(_) => Kind::Int,
                    Value::Real(_) => Kind::Real,
                    Value::Text(_) => Kind::Text,
                    Value::Bytes(_) => Kind::Bytes,
                };
                Some(match kind {
                    Kind::Bool => <bool as Type<$db>>::type_info(),
                    Kind::Int => <i64 as Type<$db>>::type_info(),
                    Kind::Real => <f64 as Type<$db>>::type_info(),
                    Kind::Text => <String as Type<$db>>::type_info(),
                    Kind::Bytes => <Vec<u8> as Type<$db>>::type_info(),
                })
            }
        }

        impl Type<$db> for Value {
            fn type_info() -> $type_info {
                <String as Type<$db>>::type_info()
            }
        }
    };
}

encode_value!(Sqlite, SqliteArgumentsBuffer, SqliteTypeInfo);
encode_value!(Postgres, PgArgumentBuffer, PgTypeInfo);
encode_value!(MySql, Vec<u8>, MySqlTypeInfo);
