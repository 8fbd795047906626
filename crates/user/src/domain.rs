//! The user domain's validated types. Input is parsed into these once, at the edge; past that point an
//! `Email` is known to be well-formed and lowercased, a `Password` within policy, a `Language` supported.

use contracts::Role;
use kernel::http::FieldError;
use serde::Serialize;

/// A syntactically valid e-mail address, lowercased so that uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        if email.len() > Self::MAX_LEN {
            return Err(FieldError::new("email", "too_long", "An e-mail address has at most 254 characters."));
        }
        if !email_address::EmailAddress::is_valid(&email) || !email.contains('@') {
            return Err(FieldError::new("email", "invalid_format", "This is not a valid e-mail address."));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password within policy: 8 to 128 characters (NIST SP 800-63B: length, not composition rules).
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    const MIN_CHARS: usize = 8;
    const MAX_CHARS: usize = 128;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(FieldError::new(field, "too_short", "A password has at least 8 characters."));
        }
        if chars > Self::MAX_CHARS {
            return Err(FieldError::new(field, "too_long", "A password has at most 128 characters."));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A person's or an account's display name: 1 to 100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    const MAX_CHARS: usize = 100;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(FieldError::new(field, "required", "A name cannot be empty."));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(field, "too_long", "A name has at most 100 characters."));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

kernel::uuid_id! {
    /// An invitation's id.
    InvitationId;
}

/// A role an invitation may grant: admin or agent. An account's owner is whoever registered it; nobody is
/// invited into ownership, whoever invites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvitedRole(Role);

impl InvitedRole {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match Role::parse(raw) {
            Some(role @ (Role::Admin | Role::Agent)) => Ok(Self(role)),
            Some(Role::Owner) => {
                Err(FieldError::new("role", "not_invitable", "Owners are not invited; invite an admin or an agent."))
            }
            None => Err(FieldError::new("role", "unsupported", "An invitation's role is `admin` or `agent`.")),
        }
    }

    pub fn role(self) -> Role {
        self.0
    }
}

/// In the API document: the roles [`InvitedRole::parse`] accepts, as a string enum.
impl utoipa::PartialSchema for InvitedRole {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some("A role an invitation grants: `admin` or `agent` (owners are not invited)."))
            .enum_values(Some([Role::Admin.as_str(), Role::Agent.as_str()]))
            .into()
    }
}

impl utoipa::ToSchema for InvitedRole {}

/// The interface language, as the seed's `update-language` route knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Ja,
    En,
}

impl Language {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "ja" => Ok(Language::Ja),
            "en" => Ok(Language::En),
            _ => Err(FieldError::new("language", "unsupported", "Supported languages are `ja` and `en`.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Ja => "ja",
            Language::En => "en",
        }
    }
}

impl TryFrom<String> for Language {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Language::parse(&s).map_err(|e| e.message)
    }
}

/// Collects field errors while parsing a request, so the client hears about every bad field at once.
#[derive(Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// Keeps the value, or records why it was rejected.
    pub fn check<T>(&mut self, parsed: Result<T, FieldError>) -> Option<T> {
        parsed.map_err(|error| self.0.push(error)).ok()
    }

    /// Every field was valid: the caller may unwrap what it checked.
    pub fn finish(self) -> Result<(), crate::UserError> {
        if self.0.is_empty() { Ok(()) } else { Err(crate::UserError::Invalid(self.0)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_lowercased() {
        assert_eq!(Email::parse("  Aiko@Example.JP ").map(|e| e.0), Ok("aiko@example.jp".to_owned()));
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for raw in ["", "aiko", "aiko@", "@example.jp", "ai ko@example.jp"] {
            assert_eq!(Email::parse(raw).map_err(|e| e.reason), Err("invalid_format".to_owned()), "{raw}");
        }
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(Password::parse("password", "パスワード長い").is_err(), "7 characters");
        assert!(Password::parse("password", "パスワードは長い").is_ok(), "8 characters");
        assert_eq!(
            Password::parse("password", &"x".repeat(129)).map_err(|e| e.reason).err().as_deref(),
            Some("too_long")
        );
    }

    #[test]
    fn only_ja_and_en_are_languages() {
        assert_eq!(Language::parse("en"), Ok(Language::En));
        assert_eq!(Language::parse("fr").map_err(|e| e.reason), Err("unsupported".to_owned()));
    }

    #[test]
    fn an_invitation_grants_admin_or_agent_never_owner() {
        assert_eq!(InvitedRole::parse("admin").map(InvitedRole::role), Ok(Role::Admin));
        assert_eq!(InvitedRole::parse("agent").map(InvitedRole::role), Ok(Role::Agent));
        assert_eq!(InvitedRole::parse("owner").map_err(|e| e.reason), Err("not_invitable".to_owned()));
        assert_eq!(InvitedRole::parse("Agent").map_err(|e| e.reason), Err("unsupported".to_owned()));
    }

    #[test]
    fn the_documented_invitation_roles_are_the_parsed_ones() {
        let schema = <InvitedRole as utoipa::PartialSchema>::schema();
        let utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(object)) = schema else {
            panic!("an inline schema");
        };
        let documented = object.enum_values.expect("an enum");
        assert_eq!(documented.len(), 2);
        for role in documented {
            assert!(InvitedRole::parse(role.as_str().expect("a string")).is_ok(), "{role}");
        }
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let password = Password::parse("password", "correct horse").expect("valid");
        assert!(!format!("{password:?}").contains("horse"));
    }
}
